"""The test-time RL step with the shipped TinyReasoner: a GRPO step moves probability
towards the better-rewarded sample; the evolve loop with RL resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from killing import Killed, killed_after

from testtime.backends import embedded_model_dir
from testtime.backends.base import SamplingParams
from testtime.programs.evolve import Evolution, EvolveConfig
from testtime.programs.problems import CountdownClosest
from testtime.programs.rl import PolicyLearner, RLConfig

torch.set_num_threads(1)


def test_a_grpo_step_favours_the_better_sample():
    learner = PolicyLearner(embedded_model_dir(), RLConfig(lr=1e-3))
    prompt = CountdownClosest().instance.prompt
    samples = learner.generate([prompt], SamplingParams(n=2, temperature=1.0, max_tokens=24, seed=3)).completions[0]
    ids = [learner.policy.completion_ids(c) for c in samples]
    assert ids[0] != ids[1]

    def logp() -> torch.Tensor:
        with torch.no_grad():
            stats = learner.policy.token_stats([learner.policy.encode_prompt(prompt)] * 2, ids)
        return stats.logp.sum(-1)

    before = logp()
    assert learner.learn([prompt] * 2, samples, [1.0, 1.0])["updated"] == 0.0  # no signal, no step
    assert torch.equal(logp(), before)
    stats = learner.learn([prompt] * 2, samples, [1.0, 0.0])
    after = logp()
    assert stats["updated"] == 1.0 and after[0] > before[0] and after[1] < before[1]


def test_evolve_with_rl_resumes_to_the_uninterrupted_run(tmp_path):
    config = EvolveConfig(generations=2, batch=4, max_tokens=32, shaping=True)
    problem = CountdownClosest()
    whole = Evolution(problem, PolicyLearner(embedded_model_dir()), tmp_path / "whole", config).run()
    with pytest.raises(Killed):
        Evolution(problem, killed_after(PolicyLearner(embedded_model_dir()), 1), tmp_path / "split", config).run()  # killed in generation 2
    assert sorted(p.name for p in (tmp_path / "split").glob("learner-*")) == ["learner-1.pt"]
    resumed = Evolution(problem, PolicyLearner(embedded_model_dir()), tmp_path / "split", config).run()
    assert resumed.curve == whole.curve
    states = [json.loads((tmp_path / d / "state.json").read_text()) for d in ("whole", "split")]
    assert states[0]["database"]["programs"] == states[1]["database"]["programs"]
    assert [r["loss"] for r in states[0]["rl"] if r["updated"]] == pytest.approx(
        [r["loss"] for r in states[1]["rl"] if r["updated"]])
    assert len(states[0]["rl"]) == 2 and len(states[0]["mean_reward"]) == 3
    assert sorted(p.name for p in (tmp_path / "whole").glob("learner-*")) == ["learner-2.pt"]


def test_rl_needs_reward_shaping(tmp_path):
    with pytest.raises(ValueError, match="shaping"):
        Evolution(CountdownClosest(), PolicyLearner(embedded_model_dir()), tmp_path, EvolveConfig())
