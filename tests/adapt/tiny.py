"""Tiny conv classifiers and data for the adaptation tests (CPU, milliseconds)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

C = 10


def tiny_net(norm: str = "bn", seed: int = 0, classes: int = C) -> nn.Sequential:
    """conv-norm-relu ×2, global pool, linear head; BN running stats made non-trivial."""
    torch.manual_seed(seed)

    def norm_layer(ch: int) -> nn.Module:
        return nn.BatchNorm2d(ch) if norm == "bn" else nn.GroupNorm(2, ch)

    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        norm_layer(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        norm_layer(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


def images(n: int = 16, seed: int = 1, hw: int = 8) -> Tensor:
    return torch.rand(n, 3, hw, hw, generator=torch.Generator().manual_seed(seed))


def source_pair(n: int = 100, seed: int = 2) -> tuple[Tensor, Tensor]:
    return images(n, seed), torch.arange(n) % C


def state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict[str, Tensor], model: nn.Module) -> set[str]:
    """Names of the state entries of ``model`` that differ from ``before``."""
    after = model.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}
