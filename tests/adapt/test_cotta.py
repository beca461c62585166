"""CoTTA: augmentation-averaged EMA teacher, all weights trained, stochastic restore."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt import CoTTA

from .tiny import changed, images, state, tiny_net


def test_counts_views_and_returns_the_teacher_prediction():
    x = images(8)
    unsure = CoTTA(tiny_net(), n_augs=3, ap=2.0)  # anchor confidence < 2: always augment
    out = unsure(x)
    assert (unsure.forwards, unsure.backwards) == (1 + 1 + 1 + 3, 1)
    sure = CoTTA(tiny_net(), n_augs=3, ap=0.0)
    out = sure(x)
    assert (sure.forwards, sure.backwards) == (3, 1)
    assert torch.allclose(out, tiny_net().train()(x), atol=1e-5)  # teacher = source at step 0


def test_trains_all_weights_and_teacher_follows_by_ema():
    model = tiny_net()
    before = state(model)
    method = CoTTA(model, n_augs=0, restore_p=0.0, ema=0.9)
    method(images(8))
    weights = {k for k in before if not k.endswith(("running_mean", "running_var", "tracked"))}
    # every weight (the conv biases before BN get ~zero gradients: BN's batch
    # statistics cancel them), and no BN buffer
    assert weights - {"0.bias", "3.bias"} <= changed(before, model) <= weights
    for t, s, p0 in zip(
        method.teacher.parameters(), model.parameters(), method.anchor.parameters(), strict=True
    ):
        assert torch.allclose(t, 0.9 * p0 + 0.1 * s, atol=1e-6)
    assert not changed(before, method.anchor)  # the anchor stays the source model


def test_stochastic_restore_resets_about_p_of_the_elements():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    method = CoTTA(model, restore_p=0.3)
    with torch.no_grad():
        for p in method.params:
            p.add_(1.0)
    torch.manual_seed(0)
    method.restore()
    restored = sum(
        int((p == p0).sum()) for p, p0 in zip(method.params, method.source_params, strict=True)
    )
    total = sum(p.numel() for p in method.params)
    assert abs(restored / total - 0.3) < 0.03
    with pytest.raises(ValueError, match="restore_p"):
        CoTTA(tiny_net(), restore_p=1.5)
