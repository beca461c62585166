"""ITTA: MixStyle branch, the element-wise learned loss, joint training, map-only test time."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt import ITTA, train_itta
from testtime.adapt.itta import ConsistencyLoss, mixstyle

from .tiny import changed, images, source_pair, state, tiny_net


def test_mixstyle_mixes_statistics_not_shape():
    h = torch.randn(8, 4, 5, 5) * torch.arange(1, 9).view(8, 1, 1, 1)
    torch.manual_seed(0)
    out = mixstyle(h)
    assert out.shape == h.shape and not torch.allclose(out, h)

    # normalised content is kept: per-sample, per-channel standardised maps agree
    def std(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)

    assert torch.allclose(std(out), std(h), atol=1e-3)
    tokens = torch.randn(8, 6, 4)  # LayerNorm-style (B, N, C)
    assert mixstyle(tokens, channel_dim=-1).shape == tokens.shape


def test_learned_loss_is_the_elementwise_mlp_by_hand():
    loss = ConsistencyLoss(3, depth=2)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, -1.0, 2.0], [0.5, 1.0, 1.0]]))
        loss.bias.copy_(torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.1, 0.0]]))
    z, z_aug = torch.zeros(1, 3), torch.tensor([[2.0, 1.0, 1.0]])
    # layer 1: relu([2, -1, 1]) = [2, 0, 1]; layer 2: [1, 0.1, 1]; mean square = 2.01/3
    assert torch.allclose(loss(z, z_aug), torch.tensor(2.01 / 3))


def test_frozen_training_aligns_gradients_and_leaves_the_model_untouched():
    model = tiny_net()
    before = state(model)
    x = images(8)
    ref = model(x)
    losses: list[float] = []
    torch.manual_seed(0)
    loss = train_itta(model, source_pair(), steps=30, lr=1e-2, train_backbone=False,
                      log=lambda s, v: losses.append(v))  # fmt: skip
    assert not changed(before, model)
    assert torch.allclose(model(x), ref)  # every hook removed
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])
    assert not any(p.requires_grad for p in loss.parameters())


def test_joint_training_fine_tunes_the_network_as_the_reference():
    model = tiny_net()
    before = state(model)
    loss = train_itta(model, source_pair(), steps=3)
    assert "0.weight" in changed(before, model) and "8.weight" in changed(before, model)
    assert not any(k.endswith("running_mean") for k in changed(before, model))  # BN frozen
    assert not any(p.requires_grad for p in model.parameters())
    assert any(not torch.equal(w, torch.ones_like(w)) for w in loss.weight)


def test_test_time_updates_only_the_maps_and_predicts_after_the_step():
    model = tiny_net()
    loss = train_itta(model, source_pair(), steps=2, train_backbone=False)
    before = state(model)
    method = ITTA(model, loss, lr=1e-2)
    maps = [p.detach().clone() for p in method.maps.parameters()]
    x = images(8)
    out = method(x)
    assert not changed(before, model)
    assert any(not torch.equal(a, b) for a, b in zip(method.maps.parameters(), maps, strict=True))
    with torch.no_grad():
        assert torch.allclose(out, model(x), atol=1e-6)  # the updated maps' prediction
    assert (method.forwards, method.backwards) == (3, 2)
    with pytest.raises(ValueError, match="consistency= .* or source_data"):
        ITTA(tiny_net())
