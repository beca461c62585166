"""Reading run directories of each kind, forgivingly."""

from __future__ import annotations

import json

import pytest

from testtime.viewer import load_run
from testtime.viewer.load import vote


def test_scale_run_summary_problems_and_shared_pools(scale_run):
    view = load_run(scale_run)
    assert view.kind == "scale" and len(view.rows) == 3
    assert view.rows[1][:4] == [4, "majority", 4, 0.75]
    assert {p.name for p in view.plots} >= {"accuracy_vs_n.png", "accuracy_vs_flops.png"}
    [problem] = view.problems
    assert problem.reference == "7" and len(problem.entries) == 3
    pools = problem.pools()  # majority@1 and @4 share one pool; greedy has its own
    assert [members for members, _ in pools] == [["majority@1", "majority@4"], ["greedy@1"]]
    assert vote(pools[0][1]) == [("7", 2), ("8", 1), ("9", 1)]
    assert view.skipped == 1 and view.notes == ["problems.jsonl:2: skipped (Expecting property "
                                                "name enclosed in double quotes: line 1 column 2 (char 1))"]


def test_adapt_and_learn_runs(tmp_path):
    adapt = tmp_path / "adapt"
    adapt.mkdir()
    (adapt / "results.json").write_text(json.dumps({"config": {"model": "resnet-bn"}, "methods": {
        "tent": {"mean_error": 19.6, "images_per_s": 310.0, "forwards_per_batch": 1.0,
                 "per_domain_error": {"fog": 20.0, "snow": 19.2}}}}))
    view = load_run(adapt)
    assert view.kind == "adapt" and view.rows == [["tent", 19.6, 310.0, 1.0, None, None, None]]
    assert view.tables == [("online error % per domain", ["method", "fog", "snow"], [["tent", 20.0, 19.2]])]
    learn = tmp_path / "learn"
    learn.mkdir()
    (learn / "metrics.json").write_text(json.dumps({
        "before": {"pass@1": 0.25, "n": 4, "correct": [1, 0]},
        "after": {"pass@1": 0.5, "n": 4, "correct": [3, 1]}, "config": {"steps": 2}}))
    (learn / "log.jsonl").write_text('{"step": 1, "pass@1": 0.3, "mode": "x"}\n[1]\n{"step": 2, "pass@1": 0.4}\n')
    view = load_run(learn)
    assert view.kind == "learn" and view.rows == [["pass@1", 0.25, 0.5]]
    assert view.tables == [
        ("training log", ["step", "pass@1"], [[1, 0.3], [2, 0.4]]),
        ("per problem: correct samples of 4", ["problem", "before", "after"], [[0, 1, 3], [1, 0, 1]]),
    ]
    assert view.notes == ["log.jsonl:2: skipped (not an object)"]


def test_not_a_run_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="holds no results.json or metrics.json"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text("{broken")
    with pytest.raises(ValueError, match="results.json: unreadable"):
        load_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no run directory"):
        load_run(tmp_path / "missing")
