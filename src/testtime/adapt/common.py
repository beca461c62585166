"""Pieces shared by the adaptation methods: losses, EMA teachers, optimizers."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn


def softmax_entropy(logits: Tensor) -> Tensor:
    """Per-sample Shannon entropy H(softmax(logits)) (Tent, Wang et al. 2021)."""
    logp = logits.log_softmax(1)
    return -(logp.exp() * logp).sum(1)


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Per-sample cross-entropy of the student against the teacher's soft labels
    (the consistency loss of CoTTA/RoTTA/PETAL); the teacher gets no gradient."""
    target = teacher_logits.detach().softmax(1)
    return -(target * student_logits.log_softmax(1)).sum(1)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy with no gradients (a teacher or an anchor)."""
    twin = copy.deepcopy(model)
    twin.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher ← momentum·teacher + (1 − momentum)·student, over parameters, fused.

    (Mean teacher, Tarvainen & Valpola 2017.) The two models must share architecture.
    """
    t = [p for p in teacher.parameters()]
    s = [p.detach() for p in student.parameters()]
    torch._foreach_lerp_(t, s, 1.0 - momentum)


def make_optimizer(
    params: Iterable[nn.Parameter],
    name: str = "adam",
    lr: float = 1e-3,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Adam or SGD as the adaptation papers use them (Tent/EATA/CoTTA: Adam 1e-3;
    ImageNet settings and SAR: SGD with momentum 0.9)."""
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: does the model have normalisation layers?")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True
        )
    raise ValueError(f"unknown optimizer {name!r}; valid: adam, sgd")


def interpolated_quantile(values: Tensor, q: float) -> Tensor:
    """The ``q`` quantile of a flat tensor with linear interpolation between the two
    nearest order statistics (as the PETAL/PSMT reference code's ``find_quantile``)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    ordered = values.flatten().sort().values
    pos = q * (ordered.numel() - 1)
    lo = int(pos)
    hi = min(lo + 1, ordered.numel() - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@torch.no_grad()
def restore_low_fisher(params: list[nn.Parameter], sources: list[Tensor], q: float) -> list[Tensor]:
    """Reset to ``sources`` every parameter entry whose squared gradient (this step's
    ``p.grad``) lies below the ``q`` quantile over all entries (PETAL-FIM / PSMT);
    returns the restore masks (True = restored)."""
    sq = [(p.grad if p.grad is not None else torch.zeros_like(p)).square() for p in params]
    threshold = interpolated_quantile(torch.cat([s.flatten() for s in sq]), q)
    masks = [s < threshold for s in sq]
    for p, p0, m in zip(params, sources, masks, strict=True):
        p.copy_(torch.where(m, p0, p))
    return masks
