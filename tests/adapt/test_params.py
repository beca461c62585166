"""Finding norm layers, configuring adaptation modes, the feature hook, affine maps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from testtime.adapt.params import (
    ChannelAffine,
    FeatureHook,
    channels_of,
    collect_norm_params,
    configure_norm,
    find_classifier,
)

from .tiny import images, state, tiny_net


def test_affine_mode_trains_only_norm_affine_with_batch_statistics():
    model = tiny_net()
    configure_norm(model, "affine")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"1.weight", "1.bias", "4.weight", "4.bias"}
    before = state(model)
    x = images(8)
    bn = model[1]
    out = bn(model[0](x))
    mean = out.mean(dim=(0, 2, 3))
    # normalised with the batch's own statistics: per-channel mean is the BN bias
    assert torch.allclose(mean, bn.bias, atol=1e-5)
    model(x)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_modes_frozen_bn_all_and_bad_mode():
    model = tiny_net()
    configure_norm(model, "all")
    assert all(p.requires_grad for p in model.parameters())
    configure_norm(model, "frozen")
    assert not any(p.requires_grad for p in model.parameters()) and not model[1].training
    configure_norm(model, "bn")
    assert model[1].training and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="valid: frozen, bn, affine, all"):
        configure_norm(model, "train")


def test_collect_norm_params_finds_bn_gn_ln_and_excludes_prefixes():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4), nn.Sequential(nn.BatchNorm2d(4), nn.Flatten()),
        nn.LayerNorm(4 * 4), nn.Linear(16, 2),
    )  # fmt: skip
    _, names = collect_norm_params(model)
    assert names == ["1.weight", "1.bias", "2.0.weight", "2.0.bias", "3.weight", "3.bias"]
    _, names = collect_norm_params(model, exclude=["2"])
    assert names == ["1.weight", "1.bias", "3.weight", "3.bias"]


def test_feature_hook_records_the_head_input():
    model = tiny_net()
    hook = FeatureHook(model)
    x = images(4)
    logits = model(x)
    feats = hook.pop()
    assert feats.shape == (4, 8)
    with pytest.raises(RuntimeError, match="no forward pass"):
        hook.pop()
    assert torch.allclose(model[8](feats), logits)
    assert find_classifier(model, "6") is model[6]
    with pytest.raises(ValueError, match="not a module"):
        find_classifier(model, "head")
    with pytest.raises(ValueError, match="no nn.Linear"):
        find_classifier(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_channel_affine_is_identity_until_trained_and_removable():
    model = tiny_net()
    x = images(4)
    ref = model(x)
    affine = ChannelAffine(model[1], *channels_of(model[1]))
    assert torch.equal(model(x), ref)
    with torch.no_grad():
        affine.shift.fill_(1.0)
    assert not torch.allclose(model(x), ref)
    affine.remove()
    assert torch.equal(model(x), ref)
    assert channels_of(nn.LayerNorm(6)) == (6, -1)
