"""TimeHC-RL: the mode formats, the paper's rewards, the shuffled-timeline contrast, and the
trainer end to end (and its fixed-mode baselines) on a tiny random GPT-2."""

from __future__ import annotations

import json
import random

import pytest

from testtime.learn import METHODS, LearnRequest
from testtime.learn.cognitive_modes import (
    RewardSpec,
    format_ok,
    mode_shares,
    mode_solution,
    rewards,
    shuffle_events,
    split_mode,
)
from testtime.learn.common import make_problems
from testtime.learn.policy import Policy
from testtime.learn.timehc import TimeHCConfig
from testtime.tasks import get_task

from .conftest import save_tiny_reasoner

FAST = {"steps": 2, "prompts_per_step": 2, "n_samples": 3, "max_tokens": 8, "eval_samples": 2,
        "checkpoint_every": 1, "train_problems": 4, "lr": 1e-3}


@pytest.fixture(scope="module")
def long_tiny(tmp_path_factory):
    return save_tiny_reasoner(tmp_path_factory.mktemp("tiny-512"), n_positions=512)


def test_formats_and_reference_responses_in_every_mode():
    task = get_task("social")
    for p in task.generate(6, 1, seed=5):
        for mode in ("intuition", "surface", "deliberate"):
            text = mode_solution(task, p, mode)
            assert split_mode(text)[0] == mode and format_ok(text) and task.is_correct(p, text)
    assert not format_ok("mode: intuition\nben thinks ball in box\nanswer: box\n")  # too much
    assert not format_ok("mode: surface\nanswer: box\n")  # too little
    assert not format_ok("mode: deliberate\nt0: ball in box.\n")  # no answer
    assert not format_ok("answer: box\n") and split_mode("mode: fast\nanswer: x")[0] is None
    with pytest.raises(ValueError, match="no solutions"):
        mode_solution(get_task("arith"), get_task("arith").generate(1, 2, 0)[0], "surface")


def test_rewards_follow_the_paper_and_the_temporal_contrast():
    spec = RewardSpec()
    texts = ["mode: intuition\nanswer: box\n", "mode: deliberate\nt0: x.\nanswer: bag\n", "answer: box\n"]
    r, paid = rewards(texts, [True, False, True], spec, None)
    assert r == [3.0, -0.5, 2.0] and not paid
    r, paid = rewards(texts, [True, False, True], spec, 0.5)  # 2/3 > 0.8 * 0.5: bonus to correct
    assert paid and r == pytest.approx([3.1, -0.5, 2.1])
    _, paid = rewards(texts, [True, False, True], spec, 0.9)
    assert not paid
    costly = rewards(texts, [True, True, True], RewardSpec(deliberation_cost=0.25), None)[0]
    assert costly[1] == pytest.approx(3.0 - 0.25)
    shares = mode_shares(texts, [True, False, True])
    assert shares["mode_intuition"] == shares["mode_none"] == pytest.approx(1 / 3)
    assert shares["acc_deliberate"] == 0.0 and "acc_surface" not in shares


def test_shuffled_timelines_keep_the_story_but_lose_the_order():
    task = get_task("social")
    p = task.generate(1, 2, seed=1)[0]
    a, b = shuffle_events(p.prompt, random.Random(0)), shuffle_events(p.prompt, random.Random(0))
    assert a == b and a != p.prompt
    lines, orig = a.split("\n"), p.prompt.split("\n")
    assert lines[0] == orig[0] and lines[-2:] == orig[-2:]  # t0 and the question stay
    assert [ln.split(": ")[0] for ln in lines[1:-2]] == [ln.split(": ")[0] for ln in orig[1:-2]]
    assert sorted(ln.split(": ", 1)[1] for ln in lines[1:-2]) == sorted(ln.split(": ", 1)[1] for ln in orig[1:-2])
    with pytest.raises(ValueError, match="timeline"):
        shuffle_events("arith: 1+2\n", random.Random(0))


def request(model, out, method, **options):
    task = get_task("social")
    return LearnRequest(method, task, "1", make_problems(task, [1], 2, 0), out, model,
                        options={**FAST, **options}, show_progress=False, label_free=True)


def test_timehc_runs_label_free_on_the_test_split_and_logs_modes(long_tiny, tmp_path):
    out = tmp_path / "run"
    metrics = METHODS.create("timehc-rl", request(long_tiny, out, "timehc-rl"))
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2]
    for key in ("pass@1", "format", "reward", "shuffled_acc", "temporal_bonus", "mode_deliberate",
                "mode_none", "rollout_tokens"):
        assert all(key in row for row in log)
    # an untrained model writes no mode line: every response is wrong and unformatted
    assert all(row["reward"] == pytest.approx(-1.5) for row in log if row["pass@1"] == 0)
    assert metrics["labels"] == "none" and "generated training problems" in metrics["reward_labels"]
    assert metrics["config"]["mode"] == "adaptive" and metrics["steps_done"] == 2
    assert set(metrics["after"]) >= {"pass@1", "maj@2", "format", "mode_none"}
    assert (out / "model" / "config.json").exists()


def test_system2_rl_forces_the_deliberate_mode_line(long_tiny, tmp_path, monkeypatch):
    seen = []
    real = Policy.rollouts

    def spy(self, prompt_ids, n, **kw):
        seen.extend(self.tokenizer.decode(p, skip_special_tokens=True) for p in prompt_ids)
        return real(self, prompt_ids, n, **kw)

    monkeypatch.setattr(Policy, "rollouts", spy)
    metrics = METHODS.create("system2-rl", request(long_tiny, tmp_path / "s2", "system2-rl", steps=1))
    assert seen and all(p.endswith("\nmode: deliberate\n") for p in seen)
    assert metrics["config"]["temporal"] is False and metrics["config"]["mode"] == "deliberate"


def test_bad_options_are_clear_errors(long_tiny, tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        TimeHCConfig(mode="fast")
    with pytest.raises(ValueError, match="positive integer"):
        TimeHCConfig(n_samples=0)
    task = get_task("arith")
    req = LearnRequest("timehc-rl", task, "2", make_problems(task, [2], 2, 0), tmp_path / "a",
                       long_tiny, options=FAST, show_progress=False)
    with pytest.raises(ValueError, match="timeline"):
        METHODS.create("timehc-rl", req)
