"""PSMT: Fisher-selective teacher EMA and selective distillation."""

from __future__ import annotations

import torch

from testtime.adapt import PSMT

from .tiny import images, source_pair, tiny_net


def test_teacher_updates_only_high_fisher_entries():
    method = PSMT(tiny_net(), n_augs=0, quantile=0.5)
    teacher_before = [p.detach().clone() for p in method.teacher.parameters()]
    method(images(8))
    flat = torch.cat([f.flatten() for f in method.fisher])
    threshold = flat.kthvalue(max(1, int(0.5 * flat.numel()))).values
    for t, t0, f in zip(method.teacher.parameters(), teacher_before, method.fisher, strict=True):
        low = f <= threshold
        assert torch.equal(t[low], t0[low])  # low-Fisher entries keep their teacher value
    moved = sum(
        int((t != t0).sum())
        for t, t0 in zip(method.teacher.parameters(), teacher_before, strict=True)
    )
    assert moved > 0


def test_selective_distillation_starts_after_the_first_step():
    method = PSMT(tiny_net(), source_data=source_pair(), n_augs=0)
    assert method.regulariser() == 0.0 and any(f.sum() > 0 for f in method.fisher)
    method(images(8))
    assert method.previous is not None
    assert float(method.regulariser().detach()) > 0.0  # the step moved weights with non-zero Fisher
