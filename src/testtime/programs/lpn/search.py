"""LPN's test-time search over the latent program space (Macfarlane & Bonnet 2024,
§3.2): start from the encoder's mean latent of the example pairs, then spend compute
on the examples' log-likelihood under the decoder. Modes: ``none`` (the mean latent),
``random`` (the best of ``steps`` samples from the pairs' posterior), ``gradient``
(``steps`` Adam steps of gradient ascent), ``both`` (random search, then gradient
ascent from its winner; the steps split in half). FLOPs count decoder passes (a
backward pass as two forwards)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from testtime.programs.lpn.model import LPN

MODES = ("none", "random", "gradient", "both")


@dataclass
class SearchResult:
    z: torch.Tensor
    log_likelihood: float  # of the examples under z
    flops: int


def _random(model: LPN, x, y, mean, logvar, count: int, generator) -> tuple[torch.Tensor, int]:
    std = (0.5 * logvar).exp().mean(0)
    candidates = mean.mean(0) + std * torch.randn(count, mean.shape[-1], generator=generator)
    candidates = torch.cat([mean.mean(0, keepdim=True), candidates])
    with torch.no_grad():
        scores = model.log_likelihood(x, y, candidates[:, None, :])
    return candidates[scores.argmax()], len(candidates) * x.shape[0] * model.decoder_flops


def _gradient(model: LPN, x, y, z: torch.Tensor, steps: int, lr: float) -> tuple[torch.Tensor, int]:
    z = z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-model.log_likelihood(x, y, z)).backward()
        opt.step()
    return z.detach(), 3 * steps * x.shape[0] * model.decoder_flops


def search(model: LPN, inputs: torch.Tensor, outputs: torch.Tensor, mode: str = "gradient",
           steps: int = 10, lr: float = 0.1, seed: int = 0) -> SearchResult:
    """A latent explaining the example pairs ``(inputs[i], outputs[i])``."""
    if mode not in MODES:
        raise ValueError(f"search mode must be one of {', '.join(MODES)}, got {mode!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    with torch.no_grad():
        mean, logvar = model.encode(inputs, outputs)
    z, flops = mean.mean(0), 0
    generator = torch.Generator().manual_seed(seed)
    if mode == "random" and steps:
        z, flops = _random(model, inputs, outputs, mean, logvar, steps, generator)
    elif mode == "gradient" and steps:
        z, flops = _gradient(model, inputs, outputs, z, steps, lr)
    elif mode == "both" and steps:
        z, f1 = _random(model, inputs, outputs, mean, logvar, max(1, steps // 2), generator)
        z, f2 = _gradient(model, inputs, outputs, z, steps - steps // 2, lr)
        flops = f1 + f2
    with torch.no_grad():
        ll = float(model.log_likelihood(inputs, outputs, z))
    return SearchResult(z, ll, flops)
