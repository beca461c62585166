"""Tiny conv classifiers and data for the adaptation tests (CPU, milliseconds)."""

from __future__ import annotations

import functools
from collections.abc import Callable

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


_TEMPLATES = torch.randn(C, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def template_data(n: int, seed: int, shift: bool = False) -> tuple[Tensor, Tensor]:
    """A learnable toy task: each class is a fixed random image plus noise. ``shift``
    applies a covariate shift (contrast ×0.4, per-channel offsets) that breaks a
    model relying on its source BN statistics."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    x = _TEMPLATES[y] + 0.8 * torch.randn(n, 3, 8, 8, generator=g)
    if shift:
        x = 0.4 * x + torch.tensor([1.0, -0.5, 0.7]).view(1, 3, 1, 1)
    return x, y


@functools.cache
def _trained_state() -> dict[str, Tensor]:
    model = tiny_net().train()
    opt = torch.optim.Adam(model.parameters(), 3e-2)
    for step in range(40):
        x, y = template_data(64, 100 + step)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return state(model)


def trained_net() -> nn.Sequential:
    """tiny_net trained on :func:`template_data` (~90% clean accuracy; trained once)."""
    model = tiny_net()
    model.load_state_dict(_trained_state())
    return model.eval()


def shifted_accuracy(method: Callable[[Tensor], Tensor], batches: int = 10) -> float:
    """Mean online accuracy of ``method`` over shifted batches of 100."""
    correct = 0
    for b in range(batches):
        x, y = template_data(100, 1000 + b, shift=True)
        correct += int((method(x).argmax(1) == y).sum())
    return correct / (100 * batches)
