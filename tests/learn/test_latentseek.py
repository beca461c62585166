"""LatentSeek optimises only the reasoning latents; rewards and stopping."""

from __future__ import annotations

import pytest
import torch

from testtime.learn.latentseek import LatentSeek, LatentSeekConfig
from testtime.learn.policy import Policy
from testtime.tasks import get_task
from testtime.verifiers import get_verifier


def test_only_the_hidden_states_change(tiny_dir):
    policy = Policy(tiny_dir)
    policy.model.requires_grad_(False)
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    task = get_task("arith")
    problem = task.generate(1, 2, 0)[0]
    cfg = LatentSeekConfig(reward="answer", lr=1.0, max_iters=3, k_init=2, max_tokens=30, fraction=0.5)
    seeker = LatentSeek(policy, task, cfg, None)
    greedy = policy.sample_texts([problem.prompt], 1, temperature=0.0, max_tokens=30, seed=None)[0][0]
    result = seeker.solve(problem)
    assert result["iterations"] == 6  # a random model never answers right: every iteration runs
    assert result["rewards"] == [-1.0, -1.0] and not result["correct"]
    assert result["text"] != greedy  # the optimised latents decode to other tokens
    after = policy.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in policy.model.parameters())


def test_no_optimisation_when_the_first_answer_is_rewarded(tiny_dir):
    policy = Policy(tiny_dir)
    task = get_task("arith")
    problem = task.generate(1, 2, 0)[0]
    seeker = LatentSeek(policy, task, LatentSeekConfig(reward="self", threshold=-1e9, max_tokens=20), None)
    result = seeker.solve(problem)
    assert result["iterations"] == 0 and len(result["rewards"]) == 1


def test_verifier_reward_reads_steps_not_the_reference(tiny_dir):
    task = get_task("arith")
    problem = task.generate(1, 3, 0)[0]
    cfg = LatentSeekConfig(reward="verifier", verifier="oracle")
    assert cfg.labels == "oracle-verifier" and LatentSeekConfig().labels == "none"
    seeker = LatentSeek(Policy(tiny_dir), task, cfg, get_verifier("oracle", task))
    gold = task.solve(problem)
    assert seeker.reward(problem, gold, []) == 0.0
    first, rest = gold.split("\n", 1)
    wrong = first[:-1] + str((int(first[-1]) + 1) % 10) + "\n" + rest
    assert seeker.reward(problem, wrong, []) == -1.0
    assert seeker.reward(problem, gold.split("answer")[0], []) == -1.0  # no answer line


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="reward"):
        LatentSeekConfig(reward="gold")
    with pytest.raises(ValueError, match="fraction"):
        LatentSeekConfig(fraction=0.0)
