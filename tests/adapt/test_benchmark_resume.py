"""A method killed inside its stream resumes at the last domain boundary and ends
with the numbers of an uninterrupted run (CoTTA: teacher, anchor, RNG included)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from testtime.adapt.benchmark import BenchConfig, markdown_table, run_benchmark
from testtime.data.corruptions import corrupt

N = 20
DOMAINS = ["gaussian_noise", "contrast", "fog"]
calls = {"n": 0, "limit": None}


class Killable(nn.Module):
    """The tiny model; its forward raises KeyboardInterrupt (a kill) after ``limit`` calls
    (the counter is shared by every copy: CoTTA's teacher and anchor count too)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["limit"] is not None and calls["n"] > calls["limit"]:
            raise KeyboardInterrupt
        return self.net(x)


def _source():
    base = np.random.default_rng(0).integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    return (lambda d, s, idx: corrupt(base[idx], d, s, 0, idx)), np.arange(N) % 10


def _run(out, method, setting="continual"):
    cfg = BenchConfig(methods=[method], batch_size=10, domains=DOMAINS, setting=setting,
                      method_options={"cotta": {"n_augs": 2}})  # fmt: skip
    return run_benchmark(cfg, out, model_factory=Killable, domain_source=_source(),
                         progress=False, log=lambda s: None)["methods"][method]  # fmt: skip


@pytest.mark.parametrize("method", ["cotta", "tent"])
def test_kill_inside_the_stream_resumes_to_identical_numbers(tmp_path, method):
    calls.update(n=0, limit=None)
    whole = _run(tmp_path / "whole", method)
    total = calls["n"]
    # Kill in the third domain, after the checkpoint taken at its start.
    calls.update(n=0, limit=int(total * 0.8))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", method)
    assert (tmp_path / "killed" / "methods" / f"{method}.partial.pt").exists()
    calls.update(n=0, limit=None)
    resumed = _run(tmp_path / "killed", method)
    assert calls["n"] <= total * 0.4  # only the last domain was recomputed
    assert resumed["resumed_at_batch"] == 4
    for key in ("per_domain_error", "mean_error", "images", "batches", "forwards", "backwards"):
        assert resumed[key] == whole[key], key
    assert not (tmp_path / "killed" / "methods" / f"{method}.partial.pt").exists()


def test_mixed_stream_is_checkpointed_every_domain_worth_of_images(tmp_path):
    # A mixed stream has no domain boundaries: it is saved every N images instead, and
    # the unfinished method's errors so far are readable (partial/<key>.json, a results row).
    calls.update(n=0, limit=None)
    whole = _run(tmp_path / "whole", "tent", "mixed")
    calls.update(n=0, limit=int(calls["n"] * 0.8))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", "tent", "mixed")
    summary = json.loads((tmp_path / "killed" / "partial" / "tent.json").read_text())
    assert summary["images"] == 2 * N and summary["total_images"] == 3 * N
    assert sum(summary["images_seen"].values()) == 2 * N
    calls.update(n=0, limit=None)
    resumed = _run(tmp_path / "killed", "tent", "mixed")
    assert resumed["resumed_at_batch"] == 4
    for key in ("per_domain_error", "mean_error", "images", "batches", "forwards", "backwards"):
        assert resumed[key] == whole[key], key
    assert not (tmp_path / "killed" / "partial" / "tent.json").exists()


def test_unfinished_method_is_a_row_of_the_report(tmp_path):
    calls.update(n=0, limit=None)
    _run(tmp_path / "whole", "tent")
    calls.update(n=0, limit=int(calls["n"] * 0.8))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "run", "tent")
    calls.update(n=0, limit=None)
    results = _run_all_done(tmp_path / "run")
    assert "tent" in results["partial"] and "tent" not in results["methods"]
    row = next(line for line in markdown_table(results).splitlines() if "unfinished" in line)
    assert row.startswith("| tent (unfinished: 40/60 images) | – | ") and row.count("–") >= 2


def _run_all_done(out):
    # A run whose method list is finished (source) writes the report, partial rows included.
    cfg = BenchConfig(methods=["source"], batch_size=10, domains=DOMAINS,
                      method_options={"cotta": {"n_augs": 2}})  # fmt: skip
    return run_benchmark(cfg, out, model_factory=Killable, domain_source=_source(),
                         progress=False, log=lambda s: None)  # fmt: skip
