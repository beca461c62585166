"""GRPO maths (advantages, clipping, KL, ETTRL reshaping, SPINE mask and band) and
one real update: the rewarded rollout gains probability, the unrewarded one loses it."""

from __future__ import annotations

import pytest
import torch

from testtime.learn.grpo import Batch, GRPOConfig
from testtime.learn.grpo_math import (
    clipped_surrogate,
    entropy_band,
    entropy_reshape,
    forking_mask,
    group_advantages,
    kl_k3,
)


def test_group_advantages_are_zero_mean_unit_std_per_group():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    a = group_advantages(r)
    assert torch.allclose(a[:2].mean(-1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(a[:2].std(-1, unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.allclose(a[0], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-4)
    # 3 right, 1 wrong: mean .75, std sqrt(.1875)
    assert a[1, 3].item() == pytest.approx(-0.75 / 0.1875**0.5, rel=1e-4)
    assert torch.equal(a[2], torch.zeros(4))  # all agree: no signal


def test_entropy_reshape_scales_by_relative_confidence():
    adv = torch.tensor([[1.0, -1.0]])
    h = torch.tensor([[1.0, 3.0]])  # mean 2
    out = entropy_reshape(adv, h)
    assert torch.allclose(out, torch.tensor([[1.5, -0.5]]))  # γ = 1 + (2-1)/2, 1 + (2-3)/2


def test_clipping_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    adv = torch.ones(1, 2)
    # token 0 ratio e^0.5 > 1.2 with positive advantage -> clipped, no gradient
    logp = torch.tensor([[0.5, 0.05]], requires_grad=True)
    clipped_surrogate(logp, old, adv, mask, 0.2).backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] < 0
    # negative advantage with ratio > 1 is *not* clipped (min picks the unclipped term)
    logp = torch.tensor([[0.5, 0.05]], requires_grad=True)
    clipped_surrogate(logp, old, -adv, mask, 0.2).backward()
    assert logp.grad[0, 0] > 0


def test_clipped_surrogate_is_minus_mean_advantage_on_policy():
    logp = torch.randn(2, 3)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert clipped_surrogate(logp, logp, adv, mask, 0.2).item() == pytest.approx(-(3 - 4) / 5)


def test_kl_k3_is_zero_at_equality_and_positive_otherwise():
    mask = torch.ones(1, 3, dtype=torch.bool)
    a = torch.tensor([[-1.0, -2.0, -0.5]])
    assert kl_k3(a, a, mask).item() == pytest.approx(0.0)
    b = a + torch.tensor([[0.3, -0.2, 0.1]])
    d = a - b
    assert kl_k3(b, a, mask).item() == pytest.approx((d.exp() - d - 1).mean().item())
    assert kl_k3(b, a, mask).item() > 0


def test_forking_mask_keeps_the_top_fraction_of_valid_tokens():
    entropy = torch.arange(20, dtype=torch.float32).view(2, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 8:] = False  # padding never selected, even with high entropy
    m = forking_mask(entropy, mask, 0.2)
    assert not m[1, 8:].any()
    assert m.sum().item() == pytest.approx(0.2 * 18, abs=1)
    assert entropy[m].min() >= entropy[mask & ~m].max()
    with pytest.raises(ValueError, match="fraction"):
        forking_mask(entropy, mask, 0.0)


def test_entropy_band_penalises_only_outside_the_band_and_pushes_back():
    h = torch.tensor([[0.5, 1.5, 3.0]], requires_grad=True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    reg = entropy_band(h, mask, 1.0, 2.0)
    assert reg.item() == pytest.approx((0.5 + 1.0) / 3)
    reg.backward()
    assert h.grad[0, 0] < 0 and h.grad[0, 1] == 0 and h.grad[0, 2] > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_samples": 9, "n_votes": 8}, "cannot exceed"),
        ({"rollout": "forest"}, "rollout"),
        ({"steps": 0}, "steps"),
        ({"reward": "gold"}, "reward"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_config_rejects_bad_values(options, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**options)


def test_an_update_moves_probability_towards_the_rewarded_rollout(tiny_dir, tmp_path):
    from testtime.learn.common import RunDir
    from testtime.learn.grpo import GRPOTrainer
    from testtime.learn.policy import Policy
    from testtime.tasks import get_task

    task = get_task("arith")
    problems = task.generate(2, 2, 0)
    policy = Policy(tiny_dir)
    cfg = GRPOConfig(steps=1, prompts_per_step=1, n_votes=2, n_samples=2, lr=1e-2, max_tokens=20)
    run = RunDir(tmp_path / "run", {"t": 1}, tiny_dir)
    trainer = GRPOTrainer(policy, task, problems, problems, cfg, run, show_progress=False)
    rows, _ = policy.rollouts([policy.encode_prompt(problems[0].prompt)], 2, temperature=1.0,
                              max_tokens=20, seed=3)
    good, bad = rows[0]

    def seq_logp() -> torch.Tensor:
        with torch.no_grad():
            st = policy.token_stats([good.prompt_ids, bad.prompt_ids], [good.ids, bad.ids])
        return st.logp.sum(-1)

    before = seq_logp()
    stats = trainer._update(Batch([[good, bad]], torch.tensor([[1.0, 0.0]]), None))
    after = seq_logp()
    assert after[0] > before[0] and after[1] < before[1]
    assert stats["updated_tokens"] == good.length + bad.length
    run.close()


def test_adv_clip_bounds_the_advantages_ettrl_adv_clip():
    from types import SimpleNamespace

    from testtime.learn.grpo import Batch, GRPOConfig, GRPOTrainer
    from testtime.learn.policy import TokenStats

    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # one lucky sample: advantage sqrt(3)
    old = TokenStats(torch.zeros(4, 2), torch.ones(4, 2), torch.ones(4, 2, dtype=torch.bool))
    batch = Batch([[None] * 4], rewards, None)
    free = GRPOTrainer._advantages(SimpleNamespace(cfg=GRPOConfig()), batch, old)
    clipped = GRPOTrainer._advantages(SimpleNamespace(cfg=GRPOConfig(adv_clip=1.0)), batch, old)
    assert free.max().item() == pytest.approx(3**0.5, rel=1e-4)
    assert clipped.max().item() == pytest.approx(1.0) and clipped.min().item() == pytest.approx(free.min().item())
    with pytest.raises(ValueError, match="adv_clip"):
        GRPOConfig(adv_clip=-1.0)
