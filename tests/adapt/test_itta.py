"""ITTA: gradient-aligned learnable consistency loss; only inserted affine maps adapt."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt import ITTA, train_itta
from testtime.adapt.itta import perturb_statistics

from .tiny import changed, images, source_pair, state, tiny_net


def test_feature_perturbation_changes_statistics_not_shape():
    h = torch.randn(8, 4, 5, 5)
    torch.manual_seed(0)
    out = perturb_statistics(h)
    assert out.shape == h.shape and not torch.allclose(out, h)
    tokens = torch.randn(8, 6, 4)  # LayerNorm-style (B, N, C)
    assert perturb_statistics(tokens, channel_dim=-1).shape == tokens.shape


def test_training_aligns_gradients_and_leaves_the_model_untouched():
    model = tiny_net()
    before = state(model)
    x = images(8)
    ref = model(x)
    losses: list[float] = []
    torch.manual_seed(0)
    loss = train_itta(model, source_pair(), steps=30, lr=1e-2, log=lambda s, v: losses.append(v))
    assert not changed(before, model)
    assert torch.allclose(model(x), ref)  # every hook removed
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])
    assert not any(p.requires_grad for p in loss.parameters())


def test_test_time_updates_only_the_inserted_maps():
    model = tiny_net()
    before = state(model)
    loss = train_itta(model, source_pair(), steps=2)
    method = ITTA(model, loss, lr=1e-2)
    maps = [p.detach().clone() for p in method.maps.parameters()]
    out = method(images(8))
    assert torch.allclose(out, tiny_net()(images(8)), atol=1e-5)  # identity maps, source BN
    assert not changed(before, model)
    assert any(not torch.equal(a, b) for a, b in zip(method.maps.parameters(), maps, strict=True))
    assert (method.forwards, method.backwards) == (2, 2)
    with pytest.raises(ValueError, match="consistency= .* or source_data"):
        ITTA(tiny_net())
