"""`testtime scale --dry-run`: the plan's counts, a probed estimate, and no run."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

WEIGHTS = Path(__file__).resolve().parents[2] / "src/testtime/zoo/weights/tiny-reasoner/config.json"


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from testtime.cli.main import main

    code = 0
    try:
        with mock.patch.object(sys, "argv", ["testtime", "scale", *args]):
            main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="TinyReasoner weights are not trained yet")
def test_dry_run_prints_the_plan_and_an_estimate_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = _cli(
        capsys, "--task", "arith", "--difficulties", "2,3", "--limit", "3",
        "--strategy", "greedy,majority,best-of-n", "--verifier", "oracle", "--n", "2,4",
        "--max-tokens", "64", "--out", str(out), "--dry-run",
    )
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "plan: task arith; difficulties (problems): 2 (3), 3 (3); budgets N: 2, 4"
    # majority and best-of-n share one pool of 4 per problem: 6 problems x 4 samples,
    # sampled 64 // 4 = 16 problems per call -> one call per difficulty.
    [pool] = [ln for ln in lines if "majority, best-of-n" in ln]
    assert "pool of 4" in pool and "24 samples, 2 model calls" in pool
    [greedy] = [ln for ln in lines if "(greedy)" in ln]
    assert "N 1 × 6 problems: 6 samples" in greedy
    assert any(ln.startswith("probe: pool:") and "tokens/s" in ln for ln in lines)
    assert lines[-1].startswith("estimated time: ~") and "?" not in lines[-1]
    assert not out.exists()


def test_dry_run_refuses_bad_input_like_a_run(tmp_path, capsys):
    code, _, err = _cli(capsys, "--task", "arith", "--strategy", "majority,nope", "--dry-run",
                        "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown strategy 'nope'" in err
