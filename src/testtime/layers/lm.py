"""A tiny causal language model over a pluggable token mixer, for comparing test-time
memory layers at equal parameters: ``lact`` (:class:`~testtime.layers.lact.LaCTLayer`;
a small ``chunk`` gives the small-chunk TTT baseline) or ``attention`` (full causal
softmax attention). Pre-norm blocks: RMSNorm, mixer, RMSNorm, SwiGLU MLP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from testtime.layers.attention import Attention
from testtime.layers.lact import LaCTConfig, LaCTLayer

MIXERS = ("lact", "attention")


@dataclass
class LMConfig:
    vocab_size: int
    dim: int = 64
    layers: int = 2
    heads: int = 2
    mixer: str = "lact"
    mlp_hidden: int = 128
    chunk: int = 64
    window: int = 16
    fast_mult: int = 2
    optimizer: str = "muon"
    lr_init: float = 0.05

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {', '.join(MIXERS)}, got {self.mixer!r}")
        if min(self.vocab_size, self.dim, self.layers, self.mlp_hidden) < 1:
            raise ValueError("vocab_size, dim, layers and mlp_hidden must be >= 1")
        self.lact()  # validates the LaCT fields too

    def lact(self) -> LaCTConfig:
        return LaCTConfig(dim=self.dim, heads=self.heads, chunk=self.chunk, window=self.window,
                          fast_mult=self.fast_mult, optimizer=self.optimizer, lr_init=self.lr_init)


class Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(cfg.dim), nn.RMSNorm(cfg.dim)
        self.mixer = LaCTLayer(cfg.lact()) if cfg.mixer == "lact" else Attention(cfg.dim, cfg.heads)
        self.up = nn.Linear(cfg.dim, 2 * cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        gate, up = self.up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class TinyLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.RMSNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched(cfg: LMConfig, mixer: str, **changes) -> LMConfig:
    """``cfg`` with another mixer (and ``changes``), its MLP widened or narrowed so the
    parameter count matches ``cfg``'s to within one MLP unit per layer (3·dim params)."""
    target = num_parameters(TinyLM(cfg))
    other = dataclasses.replace(cfg, mixer=mixer, **changes)
    base = num_parameters(TinyLM(other))
    hidden = other.mlp_hidden + round((target - base) / (3 * cfg.dim * cfg.layers))
    if hidden < 1:
        raise ValueError(f"cannot match {target} parameters with mixer {mixer!r}")
    return dataclasses.replace(other, mlp_hidden=hidden)
