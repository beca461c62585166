"""LPN's encoder and decoder (Macfarlane & Bonnet 2024, §3): the encoder maps one
input-output pair to a Gaussian over latent programs, a task's latent is the mean of
its pairs' means; the decoder maps (input grid, latent) to per-cell colour logits.
Deviation: MLPs on one-hot grids instead of the paper's transformers (tiny grids)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LPNConfig:
    size: int = 5  # grid side
    colors: int = 4  # colours per cell
    latent: int = 16  # dimensions of the latent program
    hidden: int = 512  # width of the encoder's and the decoder's MLPs

    @property
    def cells(self) -> int:
        return self.size * self.size


def one_hot(grids: torch.Tensor, colors: int) -> torch.Tensor:
    """(..., H, W) ints -> (..., H * W * colors) floats."""
    return nn.functional.one_hot(grids.long(), colors).flatten(-3).float()


class LPN(nn.Module):
    def __init__(self, config: LPNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or LPNConfig()
        width = cfg.cells * cfg.colors
        self.encoder = nn.Sequential(nn.Linear(2 * width, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, 2 * cfg.latent))
        self.decoder = nn.Sequential(nn.Linear(width + cfg.latent, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, width))

    def encode(self, inputs: torch.Tensor, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair (mean, log-variance), each (..., latent)."""
        c = self.config.colors
        h = self.encoder(torch.cat([one_hot(inputs, c), one_hot(outputs, c)], -1))
        return h.chunk(2, -1)

    def logits(self, inputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(..., H * W, colors) logits of the output grid of ``inputs`` under latent ``z``."""
        cfg = self.config
        x = one_hot(inputs, cfg.colors)
        batch = torch.broadcast_shapes(x.shape[:-1], z.shape[:-1])  # latents x pairs
        out = self.decoder(torch.cat([x.expand(*batch, -1), z.expand(*batch, -1)], -1))
        return out.view(*out.shape[:-1], cfg.cells, cfg.colors)

    def log_likelihood(self, inputs: torch.Tensor, outputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(outputs | inputs, z) summed over cells and pairs: one value per latent
        (``z`` of shape (latent,) or (m, 1, latent) against k pairs)."""
        logp = torch.log_softmax(self.logits(inputs, z), -1)
        target = outputs.long().flatten(-2).expand(logp.shape[:-1])[..., None]
        return logp.gather(-1, target)[..., 0].sum((-1, -2))

    def predict(self, inputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        size = self.config.size
        return self.logits(inputs, z).argmax(-1).view(*inputs.shape[:-2], size, size)

    @property
    def decoder_flops(self) -> int:
        """Multiply-adds x 2 of one decoder forward pass on one grid."""
        return 2 * sum(m.weight.numel() for m in self.decoder if isinstance(m, nn.Linear))
