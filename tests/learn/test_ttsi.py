"""TT-SI: the uncertainty margin, and the LoRA adapter is trained then reset."""

from __future__ import annotations

import pytest
import torch

from testtime.learn.policy import Policy
from testtime.learn.ttsi import SelfImprover, TTSIConfig, margin
from testtime.tasks import get_task


def test_margin_is_the_gap_between_the_two_most_frequent_answers():
    assert margin(["5", "5", "5", "7"]) == pytest.approx(0.5)
    assert margin(["5", "7", None, None]) == 0.0
    assert margin(["5"] * 4) == 1.0


def test_adapter_changes_the_model_then_reset_restores_it_exactly(tiny_dir):
    task = get_task("arith")
    policy = Policy(tiny_dir)
    problem = task.generate(1, 2, 0)[0]
    prompt, probe = [policy.encode_prompt(problem.prompt)], [[5, 6, 7, 8]]

    def stats():
        with torch.no_grad():
            return policy.token_stats(prompt, probe).logp.clone()

    def sample():
        return policy.sample_texts([problem.prompt], 3, temperature=1.0, max_tokens=20, seed=1)

    base, base_samples = stats(), sample()
    improver = SelfImprover(policy, task, TTSIConfig(similar=4, lora_steps=3, batch_size=2, lr=5e-2))
    assert torch.allclose(stats(), base, atol=1e-6)  # the fresh adapter is the identity
    loss = improver.adapt(problem)
    assert loss > 0 and not torch.allclose(stats(), base, atol=1e-4)
    assert sample() != base_samples  # the sampler reads the merged adapter
    improver.reset()
    assert torch.allclose(stats(), base, atol=1e-6)
    assert sample() == base_samples
    trainable = [n for n, p in improver.peft.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_solve_adapts_only_uncertain_problems(tiny_dir):
    task = get_task("arith")
    problem = task.generate(1, 2, 0)[0]
    improver = SelfImprover(Policy(tiny_dir), task, TTSIConfig(samples=4, similar=2, lora_steps=1,
                                                               batch_size=2, max_tokens=20, tau=0.0))
    assert improver.solve(problem)["adapted"] is False  # tau 0: every margin counts as confident
    improver.cfg = TTSIConfig(samples=4, similar=2, lora_steps=1, batch_size=2, max_tokens=20, tau=1.0)
    out = improver.solve(problem)
    assert out["adapted"] is True and out["loss"] > 0


def test_the_level_of_similar_problems_is_inferred_from_the_prompt_alone():
    from testtime.learn.ttsi import TTSIConfig, infer_level
    from testtime.tasks import get_task

    for name in ("arith", "mul"):
        task = get_task(name)
        for level in task.levels:
            for problem in task.generate(3, level, seed=0):
                assert infer_level(task, problem.prompt, seed=99) == level
    assert TTSIConfig().labels == "none" and TTSIConfig(level="gold").labels == "gold-difficulty"
