"""NHL: Hebbian first layer (norm-preserving), entropy-trained modulator, frozen rest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from testtime.adapt import NHL
from testtime.adapt.nhl import first_conv, soft_hebbian_update

from .tiny import changed, images, state, tiny_net


def test_only_the_first_layer_changes_and_keeps_its_filter_norms():
    model = tiny_net()
    before = state(model)
    method = NHL(model, hebb_lr=1e-2)
    modulator = [p.detach().clone() for p in method.modulator.parameters()]
    method(images(16))
    assert changed(before, model) == {"0.weight"}  # classifier and the rest frozen
    norms = model[0].weight.flatten(1).norm(dim=1)
    assert torch.allclose(norms, before["0.weight"].flatten(1).norm(dim=1), atol=1e-5)
    assert any(
        not torch.equal(a, b) for a, b in zip(method.modulator.parameters(), modulator, strict=True)
    )


def test_hebbian_step_aligns_filters_with_frequent_patches():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0]]], [[[-1.0]]]]))
    x = torch.ones(4, 1, 3, 3)
    before = conv.weight.clone()
    soft_hebbian_update(conv, x, lr=0.5)
    assert torch.allclose(conv.weight, before)  # 1-D unit filters are fixed points of Oja
    conv2 = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        conv2.weight.copy_(torch.tensor([[[[1.0]], [[0.0]]]]))
    x2 = torch.zeros(4, 2, 3, 3)
    x2[:, 1] = 1.0  # all input energy on channel 1
    for _ in range(50):
        soft_hebbian_update(conv2, x2 + 0.1 * torch.randn_like(x2), lr=0.2)
    w = conv2.weight.flatten()
    assert abs(w[1]) > abs(w[0])  # the filter turned towards the principal direction


def test_first_conv_lookup():
    net = tiny_net()
    assert first_conv(net) is net[0]
    with pytest.raises(ValueError, match="not an nn.Conv2d"):
        first_conv(tiny_net(), "1")
    with pytest.raises(ValueError, match="nn.Conv2d"):
        NHL(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))
