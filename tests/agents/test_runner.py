import json

import pytest

from testtime.agents import BFSPolicy, LoopOptions, paired_success, run_episodes, summarise
from testtime.agents.web import WebEnv
from testtime.store import RunConfigMismatch


def test_a_rerun_resumes_and_extends_and_a_changed_config_is_refused(tmp_path):
    env, opts = WebEnv(depth=2), LoopOptions(horizon=40)
    seen = []
    run_episodes(env, BFSPolicy(), range(3), opts, tmp_path, on_episode=lambda e, r: seen.append(r))
    more = run_episodes(env, BFSPolicy(), range(5), opts, tmp_path,
                        on_episode=lambda e, r: seen.append(r))
    assert seen == [False] * 3 + [True] * 3 + [False] * 2
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["value"]["seed"] == 0
    assert [e.seed for e in more] == list(range(5))
    with pytest.raises(RunConfigMismatch):
        run_episodes(env, BFSPolicy(), range(1), LoopOptions(horizon=41), tmp_path)


def test_summary_and_paired_difference_over_seeds(tmp_path):
    env = WebEnv(depth=3)
    long = run_episodes(env, BFSPolicy(), range(12), LoopOptions(horizon=200), tmp_path / "a")
    short = run_episodes(env, BFSPolicy(), range(12), LoopOptions(horizon=20), tmp_path / "b")
    s = summarise(short)
    assert s["episodes"] == 12 and 0 < s["success"] < 1 and s["ci_low"] <= s["success"] <= s["ci_high"]
    diff, low, high = paired_success(long, short)
    assert diff == pytest.approx(1 - s["success"]) and low <= diff <= high and low > 0
    with pytest.raises(ValueError, match="no episodes"):
        summarise([])
