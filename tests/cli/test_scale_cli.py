import json
import subprocess
import sys
from pathlib import Path

import pytest

from testtime.cli.scale import parse_options
from testtime.scale import STRATEGIES

WEIGHTS = Path(__file__).resolve().parents[2] / "src/testtime/zoo/weights/tiny-reasoner/config.json"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from testtime.cli.main import main; main()", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def test_list_prints_exactly_the_strategy_names():
    res = cli("scale", "--list")
    assert res.returncode == 0
    assert res.stdout.splitlines() == STRATEGIES.names()
    assert {"greedy", "sample", "majority", "weighted-majority", "best-of-n", "ffs", "rpc"} <= set(
        res.stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "majority,nope"], "unknown strategy 'nope'; valid: "),
        (["--n", "1,0"], "budget N must be a positive integer"),
        (["--n", "4,x"], "--n must be comma-separated integers"),
        (["--verifier", "nope"], "unknown verifier 'nope'; valid:"),
        (["--option", "mode=async"], "option 'mode' is not taken by any of: majority"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    res = cli("scale", "--task", "arith", "--out", str(tmp_path), *args)
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results.json").exists()


def test_unreachable_server_is_one_clear_line(tmp_path):
    res = cli(
        "scale", "--task", "arith", "--difficulty", "2", "--limit", "1", "--n", "2",
        "--backend", "openai:http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path),
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: ") and "127.0.0.1:9" in res.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="TinyReasoner weights are not trained yet")
def test_end_to_end_on_the_embedded_model(tmp_path):
    res = cli(
        "scale", "--task", "arith", "--difficulty", "2", "--strategy", "greedy,majority,best-of-n",
        "--verifier", "oracle", "--n", "1,4", "--limit", "4", "--out", str(tmp_path), timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert str(tmp_path / "report.md") in res.stdout.replace("\n", "")
    assert "scale arith: " in res.stderr  # progress lines, though stderr is a pipe
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert {(r["strategy"], r["n"]) for r in rows} == {
        ("greedy", 1), ("majority", 1), ("majority", 4), ("best-of-n", 1), ("best-of-n", 4)
    }
    for r in rows:
        assert 0.0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1.0
        assert r["generated_tokens"] > 0 and r["flops"] > 0
    by = {(r["strategy"], r["n"]): r for r in rows}
    assert by[("majority", 4)]["generated_tokens"] > 2 * by[("majority", 1)]["generated_tokens"]
    assert (tmp_path / "accuracy_vs_flops.png").is_file()
    # The run viewer reads this run: every problem with every strategy's candidates.
    from testtime.viewer import load_run, render

    view = load_run(tmp_path)
    assert len(view.problems) == 4 and view.skipped == 0
    for problem in view.problems:
        pools = dict((tuple(m), c) for m, c in problem.pools())
        assert len(pools[("majority@1", "majority@4", "best-of-n@1", "best-of-n@4")]) == 4
        assert all("text" in c and "correct" in c for cs in pools.values() for c in cs)
    assert render(view).count('<table class="candidates">') >= 8


def test_parse_options_types_values():
    assert parse_options(["mode=async", "width=4", "beta=0.5", "x=true", "lookahead-k=none"]) == {
        "mode": "async", "width": 4, "beta": 0.5, "x": True, "lookahead_k": None
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["novalue"])


def test_label_free_refuses_the_oracle_before_any_work(tmp_path):
    res = cli(
        "scale", "--task", "arith", "--difficulty", "2", "--limit", "1", "--n", "2",
        "--strategy", "best-of-n", "--verifier", "oracle", "--label-free", "--out", str(tmp_path),
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: ") and "oracle" in res.stderr
    assert not (tmp_path / "results.json").exists()
