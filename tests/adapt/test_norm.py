"""source / bn / bn-alpha: which statistics normalise, and nothing is learned."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from testtime.adapt import BNAdapt, BNAlpha, Source

from .tiny import changed, images, shifted_accuracy, state, tiny_net, trained_net


def test_source_is_the_eval_model_and_changes_nothing():
    model = tiny_net()
    x = images(8)
    ref = model(x)
    before = state(model)
    method = Source(model)
    assert torch.allclose(method(x), ref)
    assert not changed(before, model) and method.backwards == 0


def test_bn_uses_batch_statistics_without_touching_parameters_or_buffers():
    model = tiny_net()
    before = state(model)
    x = images(8)
    out = BNAdapt(model)(x)
    reference = tiny_net().train()  # plain train-mode BN = batch statistics
    assert torch.allclose(out, reference(x), atol=1e-5)
    assert not changed(before, model)  # running stats untouched
    with pytest.raises(ValueError, match="BatchNorm"):
        BNAdapt(tiny_net("gn"))


def test_bn_alpha_interpolates_between_source_and_batch_statistics():
    x = images(8)
    source_out = tiny_net()(x)
    batch_out = tiny_net().train()(x)
    assert torch.allclose(BNAlpha(tiny_net(), alpha=1.0)(x), source_out, atol=1e-5)
    assert torch.allclose(BNAlpha(tiny_net(), alpha=0.0)(x), batch_out, atol=1e-5)
    mid = BNAlpha(tiny_net(), alpha=0.5)(x)
    assert not torch.allclose(mid, source_out, atol=1e-3)
    assert not torch.allclose(mid, batch_out, atol=1e-3)
    model = tiny_net()
    keys = set(model.state_dict())
    BNAlpha(model)
    assert set(model.state_dict()) == keys  # replaced layers keep the same state
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        BNAlpha(tiny_net(), alpha=2.0)
    with pytest.raises(ValueError, match="BatchNorm"):
        BNAlpha(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))


def test_bn_adaptation_recovers_a_covariate_shift():
    source = shifted_accuracy(Source(trained_net()))
    assert source < 0.3  # the shift breaks the source statistics
    assert shifted_accuracy(BNAdapt(trained_net())) > source + 0.5
    assert shifted_accuracy(BNAlpha(trained_net())) > source + 0.5


def test_batchnorm_subclasses_with_extra_behaviour_are_refused():
    class BatchNormAct(nn.BatchNorm2d):  # like timm's: BN followed by an activation
        def forward(self, x):
            return torch.relu(super().forward(x))

    model = nn.Sequential(nn.Conv2d(3, 4, 1), BatchNormAct(4), nn.Flatten(), nn.Linear(4 * 64, 2))
    with pytest.raises(ValueError, match="cannot replace BatchNormAct"):
        BNAlpha(model)
    out = BNAdapt(model)(images(4))  # batch statistics work through the subclass
    assert out.shape == (4, 2)
