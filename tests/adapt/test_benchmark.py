"""The adaptation benchmark on a tiny model and tiny real-corruption streams: results, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from testtime.adapt.benchmark import BenchConfig, markdown_table, run_benchmark
from testtime.data.corruptions import corrupt
from testtime.registry import UnknownName

N = 40
DOMAINS = ["gaussian_noise", "contrast"]


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10),
    )  # fmt: skip


def _domain_source():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(N) % 10

    def source(domain: str, severity: int, idx: np.ndarray) -> np.ndarray:
        return corrupt(base[idx], domain, severity, 0, idx)

    return source, labels


def _run(tmp_path, methods, **kw):
    cfg = BenchConfig(methods=methods, setting=kw.pop("setting", "continual"), batch_size=10,
                      domains=DOMAINS, **kw)  # fmt: skip
    return run_benchmark(
        cfg, tmp_path, model_factory=_tiny_model, domain_source=_domain_source(),
        progress=False, log=lambda s: logs.append(s),
    )  # fmt: skip


logs: list[str] = []


def test_tiny_run_writes_results_and_resumes(tmp_path):
    res = _run(tmp_path, ["source", "bn", "tent"])
    methods = res["methods"]
    assert set(methods) == {"source", "bn", "tent"}
    for r in methods.values():
        assert set(r["per_domain_error"]) == set(DOMAINS)
        assert r["images"] == N * len(DOMAINS) and r["batches"] == 8
        assert r["mean_error"] == pytest.approx(np.mean(list(r["per_domain_error"].values())))
        assert r["images_per_s"] > 0 and r["wall_s"] >= 0 and r["peak_mem_mb"] >= 0
    # Cost columns come from the methods' own counters.
    assert methods["source"]["backwards"] == 0
    assert methods["tent"]["forwards"] == methods["tent"]["backwards"] == 8
    assert methods["bn"]["backwards"] == 0
    for f in ("results.json", "results.md", "heatmap.png", "config.json"):
        assert (tmp_path / f).stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["methods"]["tent"] == methods["tent"]
    assert "| tent |" in (tmp_path / "results.md").read_text()
    # The stream's class correlation is recorded with the run (i.i.d. batches of 10 here).
    stream = res["stream"]
    assert stream["batches"] == 8 and 1 <= stream["distinct_classes_per_batch"] <= 10
    assert "distinct classes per batch" in (tmp_path / "results.md").read_text()

    # Kill-and-restart: a finished method is not recomputed, a missing one is.
    tent_file = tmp_path / "methods" / "tent.json"
    before = tent_file.stat().st_mtime_ns
    (tmp_path / "methods" / "bn.json").unlink()
    logs.clear()
    res2 = _run(tmp_path, ["source", "bn", "tent"])
    assert tent_file.stat().st_mtime_ns == before
    assert any("tent: done earlier" in s for s in logs)
    assert res2["methods"]["bn"]["per_domain_error"] == methods["bn"]["per_domain_error"]


def test_same_stream_same_numbers_and_source_is_the_plain_model(tmp_path):
    a = _run(tmp_path / "a", ["source"], setting="mixed")["methods"]["source"]
    b = _run(tmp_path / "b", ["source"], setting="mixed")["methods"]["source"]
    assert a["per_domain_error"] == b["per_domain_error"]
    source, labels = _domain_source()
    model = _tiny_model().eval()
    with torch.no_grad():
        for d in DOMAINS:
            x = torch.from_numpy(source(d, 5, np.arange(N))).permute(0, 3, 1, 2).float() / 255
            err = 100.0 * (model(x).argmax(1).numpy() != labels).mean()
            assert a["per_domain_error"][d] == pytest.approx(err)


def test_guard_results_are_kept_apart(tmp_path):
    res = _run(tmp_path, ["tent"], guard=True)
    assert set(res["methods"]) == {"tent+guard"}
    assert res["methods"]["tent+guard"]["rollbacks"] >= 0
    assert "collapse guard on" in markdown_table(res)


def test_errors(tmp_path):
    with pytest.raises(UnknownName, match="valid: .*tent"):
        _run(tmp_path, ["tnet"])
    with pytest.raises(ValueError, match="unknown setting"):
        _run(tmp_path, ["tent"], setting="sideways")
    _run(tmp_path / "x", ["source"])
    with pytest.raises(ValueError, match="another configuration .*seed"):
        _run(tmp_path / "x", ["source"], seed=1)
