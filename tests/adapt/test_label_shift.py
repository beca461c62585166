"""Label-shift adapter: identity at init, learns prior shifts; the online part."""

from __future__ import annotations

import torch

from testtime.adapt import LabelShiftAdapter, LabelShiftTTA, train_label_shift_adapter

from .tiny import changed, images, source_pair, state, tiny_net


def test_untrained_adapter_is_the_identity():
    adapter = LabelShiftAdapter(10)
    logits = torch.randn(4, 10)
    assert torch.equal(adapter(logits, torch.full((10,), 0.1)), logits)


def test_trained_adapter_moves_predictions_towards_the_target_prior():
    model = tiny_net()
    before = state(model)
    torch.manual_seed(0)
    adapter = train_label_shift_adapter(model, source_pair(200), steps=300, lr=1e-2)
    assert not changed(before, model)
    assert torch.allclose(adapter.source_prior, torch.full((10,), 0.1))
    with torch.no_grad():
        logits = model(images(64))
        skewed = torch.full((10,), 0.02)
        skewed[4] = 0.82
        shifted = adapter(logits, skewed).softmax(1)[:, 4].mean()
        uniform = adapter(logits, torch.full((10,), 0.1)).softmax(1)[:, 4].mean()
    assert shifted > uniform + 0.1


def test_online_part_tracks_the_prior_and_keeps_the_head():
    model = tiny_net()
    before = state(model)
    adapter = train_label_shift_adapter(model, source_pair(), steps=5)
    method = LabelShiftTTA(model, adapter, prior_momentum=0.5)
    out = method(images(16))
    assert torch.allclose(
        method.prior, 0.5 * torch.full((10,), 0.1) + 0.5 * out.softmax(1).mean(0), atol=1e-6
    )
    assert changed(before, model) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert not any(p.requires_grad for p in adapter.parameters())
