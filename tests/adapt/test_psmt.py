"""PSMT as its released code: SCE + EWC, Fisher restore, the two-step teacher update."""

from __future__ import annotations

import torch

from testtime.adapt import PSMT
from testtime.adapt.common import interpolated_quantile
from testtime.adapt.psmt import symmetric_cross_entropy

from .tiny import images, source_pair, tiny_net


def test_symmetric_cross_entropy_by_hand():
    s, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    ps, pt = s.softmax(1), t.softmax(1)
    expected = -0.5 * (pt * ps.log()).sum() - 0.5 * (ps * pt.log()).sum()
    assert torch.allclose(symmetric_cross_entropy(s, t), expected.view(1))


def test_restore_and_teacher_update_follow_the_released_code():
    model = tiny_net()
    method = PSMT(model, quantile=0.2)
    x = images(8)
    teacher0 = [p.detach().clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        t = method.teacher(x)
    out = method(x)
    grads_sq = torch.cat([p.grad.square().flatten() for p in method.params])
    threshold = interpolated_quantile(grads_sq, 0.2)
    for p, p0, t_new, t_old in zip(
        method.params, method.source_params, method.teacher.parameters(), teacher0, strict=True
    ):
        restored = p.grad.square() < threshold
        assert torch.equal(p[restored], p0[restored])
        # restored entries: the teacher copies the student; others: two EMA steps
        assert torch.equal(t_new[restored], p[restored])
        once = torch.lerp(t_old, p, 0.001)
        twice = torch.lerp(once, p, 0.001)
        assert torch.allclose(t_new[~restored], twice[~restored], atol=1e-7)
    assert out.shape == t.shape and not torch.allclose(out, t)  # teacher + student logits


def test_ewc_term_anchors_to_source_with_the_source_fisher():
    method = PSMT(tiny_net(), source_data=source_pair(40))
    assert method.regulariser() == 0.0 and any(f.sum() > 0 for f in method.fisher)
    method(images(8))
    assert float(method.regulariser().detach()) > 0.0
    assert PSMT(tiny_net()).regulariser() == 0.0  # no source data: no EWC term


def test_paper_augmentations_option_runs_an_augmented_student_branch():
    method = PSMT(tiny_net(), augment_views=True, n_augs=2)
    method(images(8))
    assert method.forwards == 1 + 1 + 1 + 2 + 1  # student, anchor, teacher, views, aug student
