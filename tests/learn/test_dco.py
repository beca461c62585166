"""DCO's loss and its gradient factor against cross-entropy; a short fine-tune."""

from __future__ import annotations

import math

import pytest
import torch

from testtime.learn.dco import dco_factor, dco_loss, log1mexp, sequence_loss


@pytest.mark.parametrize("p", [1e-6, 0.01, 0.3, 0.9, 0.999])
def test_loss_matches_the_formula(p):
    s = torch.tensor(math.log(p), dtype=torch.float64)
    for n in (1, 4, 16):
        assert dco_loss(s, n).item() == pytest.approx(-math.log(1 - (1 - p) ** n), rel=1e-9)


@pytest.mark.parametrize("p", [1e-4, 0.05, 0.5, 0.95])
def test_gradient_is_cross_entropys_times_F(p):
    n = 8
    s = torch.tensor(math.log(p), dtype=torch.float64, requires_grad=True)
    dco_loss(s, n).backward()
    g_dco = s.grad.item()
    s.grad = None
    sequence_loss(s, "ce", n).backward()
    g_ce = s.grad.item()
    F = n * p * (1 - p) ** (n - 1) / (1 - (1 - p) ** n)
    assert g_dco == pytest.approx(F * g_ce, rel=1e-6)
    assert dco_factor(s.detach(), n).item() == pytest.approx(F, rel=1e-6)


def test_factor_limits_confidence_and_equals_ce_for_unlikely_solutions():
    s = torch.tensor([-900.0, math.log(1e-9), math.log(0.5), math.log(0.999)], dtype=torch.float64)
    F = dco_factor(s, 16)
    assert F[0].item() == 1.0
    F = F[1:]
    assert F[0].item() == pytest.approx(1.0, abs=1e-6)
    assert F[0] > F[1] > F[2] and F[2] < 1e-20
    assert dco_factor(s, 1).tolist() == pytest.approx([1.0] * 4)  # N = 1 is CE


def test_stable_for_long_and_near_certain_sequences():
    s = torch.tensor([-800.0, -1e-9, 0.0], requires_grad=True)
    loss = dco_loss(s, 8)
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(s.grad).all()
    assert log1mexp(torch.tensor(-1e-3)).item() == pytest.approx(math.log(1 - math.exp(-1e-3)), rel=1e-6)


def test_dco_and_ce_fine_tunes_run_and_report_pass_at_k(tiny_dir, tmp_path):
    from testtime.learn import METHODS, LearnRequest
    from testtime.tasks import get_task

    task = get_task("arith")
    res = {}
    for objective in ("dco", "ce"):
        req = LearnRequest("dco", task, "2", task.generate(2, 2, 0), tmp_path / objective, tiny_dir,
                           options={"objective": objective, "steps": 2, "batch_size": 4,
                                    "train_problems": 8, "eval_samples": 3, "max_tokens": 30},
                           show_progress=False)
        res[objective] = METHODS.create("dco", req)
    assert set(res["dco"]["after"]["pass@k"]) == {"1", "2", "3"}
    assert res["dco"]["steps_done"] == 2
    # On a random model p ≈ 0, so DCO's gradient is CE's: both update identically.
    from testtime.learn.policy import Policy

    a, b = Policy(tmp_path / "dco" / "model"), Policy(tmp_path / "ce" / "model")
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.allclose(x, y, atol=1e-6)
    with pytest.raises(ValueError, match="objective"):
        METHODS.create("dco", LearnRequest("dco", task, "2", task.generate(1, 2, 0), tmp_path / "x",
                                           tiny_dir, options={"objective": "mse"}))
