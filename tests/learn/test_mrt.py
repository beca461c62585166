"""MRT's progress bonus: episodes are the step lines; the bonus is J(j) - J(j-1)."""

from __future__ import annotations

import pytest
import torch

from testtime.learn import mrt
from testtime.learn.grpo import GRPOConfig
from testtime.learn.policy import Policy, Rollout
from testtime.tasks import get_task


def rollout(policy: Policy, prompt: str, text: str) -> Rollout:
    ids = policy.tokenizer.encode(text, add_special_tokens=False) + [policy.eos_id]
    return Rollout(policy.encode_prompt(prompt), ids, text, "stop")


def test_episodes_are_the_step_lines_before_the_answer(tiny_dir):
    policy = Policy(tiny_dir)
    r = rollout(policy, "arith: 1 +2 *3\n", "1+2=3\n3*3=9\nanswer: 9\n")
    assert mrt.episodes(policy, r) == [(0, 6), (6, 12)]


def test_progress_bonus_is_the_gain_in_forced_answer_accuracy(tiny_dir, monkeypatch):
    policy = Policy(tiny_dir)
    task = get_task("arith")
    problem = task.generate(1, 2, 0)[0]
    r = rollout(policy, problem.prompt, "a\nb\nanswer: 9\n")  # two episodes
    cut_answers = {0: " 1", 2: " 1", 4: " 9"}  # forced after 0, 1, 2 episodes

    def fake_rollouts(prompt_ids, n, **kw):
        rows = []
        for p in prompt_ids:
            done = len(p) - len(r.prompt_ids) - len("answer:")
            rows.append([Rollout(p, [], cut_answers[done], "stop")] * n)
        return rows, type("U", (), {"completion_tokens": 7})()

    monkeypatch.setattr(policy, "rollouts", fake_rollouts)
    bonus, tokens = mrt.progress_bonus(policy, task, [problem], [[r]], ["9"],
                                       GRPOConfig(mrt_samples=2), seed=0)
    assert tokens == 7
    # J = [0, 0, 1]: episode 1 made no progress, episode 2 found the answer
    assert torch.equal(bonus[0, :2], torch.zeros(2))
    assert torch.equal(bonus[0, 2:4], torch.ones(2))
    assert bonus[0, 4:].abs().sum() == 0  # the answer line carries no bonus


def test_mrt_reward_runs_inside_the_trainer(answering_dir, tmp_path):
    from testtime.learn import METHODS, LearnRequest

    task = get_task("arith")
    req = LearnRequest("ttrl", task, "2", task.generate(2, 2, 0), tmp_path / "r", answering_dir,
                       options={"steps": 1, "prompts_per_step": 2, "n_votes": 4, "n_samples": 2,
                                "max_tokens": 24, "eval_samples": 1, "reward": "mrt"},
                       show_progress=False)
    METHODS.create("ttrl", req)
    import json

    row = json.loads((tmp_path / "r" / "log.jsonl").read_text().splitlines()[0])
    assert row["mrt_tokens"] >= 0 and row["rollout_tokens"] > 0
    with pytest.raises(ValueError, match="reward"):
        GRPOConfig(reward="progress")
