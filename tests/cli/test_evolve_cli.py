"""``testtime evolve``: a short run writes its report; rerunning resumes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from testtime.cli.main import app


def invoke(*args: str):
    return CliRunner().invoke(app, ["evolve", *args])


def test_evolve_runs_reports_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["autocorrelation", "--batch", "2", "--out", str(out), "--wall-s", "10"]
    first = invoke(*args, "--generations", "2")
    assert first.exit_code == 0, first.output
    assert "best autocorrelation score" in first.output and "generation 2/2" in first.output
    for name in ("state.json", "best.py", "curve.png", "summary.json", "report.md"):
        assert (out / name).exists(), name
    more = invoke(*args, "--generations", "3")  # resumes: only generation 3 runs
    assert more.exit_code == 0, more.output
    assert "generation 3/3" in more.output and "generation 1/" not in more.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generations"] == 3 and len(summary["curve"]) == 4 and summary["programs"] == 7


def test_evolve_lists_problems_and_refuses_unknown_ones():
    listed = invoke("--list")
    assert listed.exit_code == 0 and listed.output.split() == ["autocorrelation", "circle-packing", "countdown-closest"]
    assert isinstance(invoke("no-such-problem").exception, KeyError)
