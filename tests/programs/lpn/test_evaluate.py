"""LPN evaluation: the cells measured, exact checking, intervals, resuming a killed
evaluation and recomputing when the weights change."""

from __future__ import annotations

import json

import pytest
import torch

from testtime.programs.lpn import evaluate as ev
from testtime.programs.lpn.evaluate import EvalConfig, SearchRow, evaluate, measure
from testtime.programs.lpn.model import LPN, LPNConfig

torch.set_num_threads(1)
CFG = EvalConfig(search_steps="0,2", modes="random,gradient", tasks=4)


@pytest.fixture(scope="module")
def model() -> LPN:
    torch.manual_seed(0)
    return LPN(LPNConfig(hidden=32, latent=4)).eval()


def test_cells_put_the_mean_latent_at_budget_zero_and_bad_settings_fail():
    assert CFG.cells() == [("train", "none", 0), ("train", "random", 2), ("train", "gradient", 2),
                           ("ood", "none", 0), ("ood", "random", 2), ("ood", "gradient", 2)]
    for bad, message in [({"modes": "beam"}, "modes"), ({"modes": "none"}, "modes"),
                         ({"search_steps": "1,x"}, "comma-separated"), ({"search_steps": "-1"}, ">= 0"),
                         ({"tasks": 0}, "tasks")]:
        with pytest.raises(ValueError, match=message):
            EvalConfig(**bad)


def test_a_cell_counts_exact_matches_and_its_compute(model):
    none, gradient = measure(model, "ood", "none", 0, CFG), measure(model, "ood", "gradient", 2, CFG)
    assert none.flops == 0 and gradient.flops > 0
    assert gradient.log_likelihood > none.log_likelihood  # the search explains the examples better
    assert none.tasks == 4 and 0 <= none.correct <= 4
    row = SearchRow("train", "none", 0, correct=3, tasks=10, flops=0, log_likelihood=0)
    lo, hi = row.interval()
    assert lo < 0.3 < hi and (lo, hi) == pytest.approx((0.108, 0.603), abs=1e-3)


class Killed(Exception):
    pass


def test_a_killed_evaluation_resumes_and_new_weights_start_over(model, tmp_path, monkeypatch):
    path, calls = tmp_path / "eval.json", []
    real = ev.measure
    monkeypatch.setattr(ev, "measure", lambda *a: calls.append(a[1:4]) or real(*a))

    def kill_after_two(row: SearchRow) -> None:
        if len(calls) == 2:
            raise Killed

    with pytest.raises(Killed):
        evaluate(model, path, CFG, {"step": 1}, on_row=kill_after_two)
    assert len(json.loads(path.read_text())["rows"]) == 2
    rows = evaluate(model, path, CFG, {"step": 1})
    assert calls[2:] == CFG.cells()[2:]  # only the cells not yet measured
    assert [(r.split, r.mode, r.steps) for r in rows] == CFG.cells()
    evaluate(model, path, CFG, {"step": 2})  # other weights: every cell again
    assert calls[6:] == CFG.cells()
