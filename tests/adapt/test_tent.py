"""Tent: entropy minimisation on norm affine parameters only."""

from __future__ import annotations

import torch

from testtime.adapt import BNAdapt, Tent
from testtime.adapt.common import softmax_entropy

from .tiny import changed, images, shifted_accuracy, state, tiny_net, trained_net


def test_tent_updates_only_norm_affine_and_lowers_entropy():
    model = tiny_net()
    before = state(model)
    method = Tent(model, lr=1e-2)
    x = images(32)
    first = method(x)
    assert changed(before, model) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    for _ in range(20):
        last = method(x)
    assert softmax_entropy(last).mean() < softmax_entropy(first).mean()
    assert (method.forwards, method.backwards) == (21, 21)


def test_prediction_is_the_one_of_the_updating_pass():
    model = tiny_net()
    x = images(16)
    expected = tiny_net().train()(x)  # before any update, with batch statistics
    assert torch.allclose(Tent(model)(x), expected, atol=1e-5)


def test_episodic_resets_before_every_batch():
    method = Tent(tiny_net(), lr=1e-2, episodic=True)
    x = images(16)
    assert torch.allclose(method(x), method(x), atol=1e-6)
    online = Tent(tiny_net(), lr=1e-2)
    assert not torch.allclose(online(x), online(x), atol=1e-4)


def test_sgd_option():
    method = Tent(tiny_net(), optimizer="sgd", lr=2.5e-4)
    assert isinstance(method.optimizer, torch.optim.SGD)
    assert method.optimizer.param_groups[0]["momentum"] == 0.9


def test_tent_keeps_the_accuracy_bn_adaptation_recovers():
    bn = shifted_accuracy(BNAdapt(trained_net()))
    assert shifted_accuracy(Tent(trained_net())) >= bn - 0.03
