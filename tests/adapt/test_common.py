"""Shared losses, EMA teacher update and optimizer construction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from testtime.adapt.common import (
    ema_update,
    frozen_copy,
    make_optimizer,
    soft_cross_entropy,
    softmax_entropy,
)


def test_entropy_and_soft_cross_entropy():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(softmax_entropy(logits), torch.tensor([math.log(4), 0.0]), atol=1e-5)
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5, requires_grad=True)
    ce = soft_cross_entropy(student, teacher)
    # CE(p, q) = H(p) + KL(p || q) ≥ H(p), equality when equal
    assert (ce >= softmax_entropy(teacher) - 1e-6).all()
    assert torch.allclose(soft_cross_entropy(teacher, teacher), softmax_entropy(teacher))
    ce.sum().backward()
    assert teacher.grad is None and student.grad is not None


def test_ema_update_moves_teacher_towards_student():
    student = nn.Linear(3, 2)
    teacher = frozen_copy(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        teacher.weight.zero_()
        student.weight.fill_(1.0)
    ema_update(teacher, student, momentum=0.9)
    assert torch.allclose(teacher.weight, torch.full((2, 3), 0.1))
    assert torch.equal(teacher.bias, student.bias)


def test_make_optimizer_validates():
    p = [nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(p, "adam", 1e-3), torch.optim.Adam)
    sgd = make_optimizer(p, "sgd", 0.1, momentum=0.5)
    assert sgd.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ValueError, match="valid: adam, sgd"):
        make_optimizer(p, "lion")
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer([], "adam")
    with pytest.raises(ValueError, match="lr must be > 0"):
        make_optimizer(p, "adam", 0.0)
