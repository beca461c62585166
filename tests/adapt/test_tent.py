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


def test_tent_step_equals_the_hand_computed_entropy_gradient():
    # 2-layer net: Linear(4 -> 3) -> BatchNorm1d(3) -> Linear(3 -> 5); Tent trains γ, β.
    torch.manual_seed(0)
    first, bn, head = torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 5)
    torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
    torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    model = torch.nn.Sequential(first, bn, head)
    gamma, beta = bn.weight.detach().clone(), bn.bias.detach().clone()
    x = torch.randn(6, 4)
    with torch.no_grad():
        h = first(x)
        hhat = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn.eps)
        z = (gamma * hhat + beta) @ head.weight.T + head.bias
        p = z.softmax(1)
        ent = -(p * p.log()).sum(1)
        dz = -p * (p.log() + ent.unsqueeze(1)) / len(x)  # d mean(H) / d logits
        # β and γ are leaves after the batch statistics (which do not depend on them)
        d_out = dz @ head.weight  # (B, 3): gradient at the BN output
        grad_beta, grad_gamma = d_out.sum(0), (d_out * hhat).sum(0)
    method = Tent(model, optimizer="sgd", lr=1.0, momentum=0.0)
    method(x)
    assert torch.allclose(bn.bias, beta - grad_beta, atol=1e-6)
    assert torch.allclose(bn.weight, gamma - grad_gamma, atol=1e-6)


def test_tent_adapts_inside_no_grad():
    model = tiny_net()
    before = state(model)
    with torch.no_grad():
        Tent(model, lr=1e-2)(images(8))
    assert changed(before, model)
