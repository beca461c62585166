"""TTI's horizon curriculum and its online RL loop on a tiny random GPT-2 (web environment)."""

from __future__ import annotations

import json

import pytest
import torch

from testtime.agents import ENVIRONMENTS
from testtime.agents.horizon import HorizonSchedule
from testtime.agents.tti_rl import TTIConfig, TTITrainer, train_tti
from testtime.learn.common import RunDir
from testtime.learn.policy import Policy

FAST = dict(steps=3, tasks_per_step=1, group=2, h_start=1, h_end=3, stage_steps=1, step_tokens=6,
            eval_episodes=1, eval_horizon=2, checkpoint_every=1)


def test_horizon_schedules_grow_in_stages_up_to_the_end():
    grow = HorizonSchedule("multiplicative", start=5, end=20, stage_steps=2, factor=2)
    assert [grow.horizon(s) for s in range(8)] == [5, 5, 10, 10, 20, 20, 20, 20]
    add = HorizonSchedule("additive", start=4, end=12, stage_steps=1, increment=3)
    assert [add.horizon(s) for s in range(5)] == [4, 7, 10, 12, 12]
    assert {HorizonSchedule("fixed", 5, 30).horizon(s) for s in range(5)} == {30}
    with pytest.raises(ValueError, match="schedule"):
        HorizonSchedule("linear")
    with pytest.raises(ValueError, match="start <= end"):
        HorizonSchedule(start=10, end=5)
    with pytest.raises(ValueError, match="advantage"):
        TTIConfig(advantage="ppo")


def test_tti_loop_trains_with_a_growing_horizon_and_resumes(tiny_model, tmp_path, one_thread):
    tiny = tiny_model
    env = ENVIRONMENTS.create("web", depth=1, branching=2, distractors=0)
    out = tmp_path / "tti"
    metrics = train_tti(env, tiny, out, TTIConfig(**FAST), show_progress=False)
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [row["horizon"] for row in log] == [1, 2, 3]
    # an episode never runs past its horizon, and each of its steps was recorded
    assert all(row["episode_steps"] <= row["horizon"] for row in log)
    assert all(row["trained_steps"] == 2 * row["episode_steps"] for row in log)
    assert metrics["steps_done"] == 3 and {"success", "ci_low", "steps"} <= set(metrics["after"])
    assert (out / "model" / "config.json").exists()
    # rerun: everything comes from the checkpoint, same result
    again = train_tti(env, tiny, out, TTIConfig(**FAST), show_progress=False)
    assert again["steps_done"] == 3 and again["after"] == metrics["after"]


def test_the_update_moves_weights_only_when_episodes_differ(tiny_model, tmp_path, one_thread):
    tiny = tiny_model
    env = ENVIRONMENTS.create("web", depth=1, branching=2, distractors=0)
    policy = Policy(tiny)
    run = RunDir(tmp_path / "u", {"k": 1}, tiny)
    trainer = TTITrainer(policy, env, TTIConfig(**FAST, micro_batch=1), run, show_progress=False)
    ids = policy.encode_prompt("You are a web agent.\nThought:")
    steps = [(ids, policy.tokenizer.encode(" go\nAction: back\n", add_special_tokens=False))] * 3
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    assert trainer._update(steps, torch.zeros(3)) == {"pg_loss": 0.0, "grad_norm": 0.0}
    assert all(torch.equal(before[k], v) for k, v in policy.model.state_dict().items())
    logp = policy.token_stats([ids], [steps[0][1]]).logp.sum().item()
    stats = trainer._update(steps, torch.tensor([1.0, 1.0, 0.0]))
    after = policy.token_stats([ids], [steps[0][1]]).logp.sum().item()
    assert stats["grad_norm"] > 0 and after > logp  # the rewarded step became likelier
    run.close()
