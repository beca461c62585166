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


def test_online_prior_is_the_batch_em_estimate_and_the_head_is_kept():
    model = tiny_net()
    before = state(model)
    adapter = train_label_shift_adapter(model, source_pair(), steps=5)
    method = LabelShiftTTA(model, adapter, em_steps=2, prior_floor=0.0)
    x = images(16)
    with torch.no_grad():
        logits = tiny_net().train()(x)  # the update's pass: BN batch statistics
        prior = torch.full((10,), 0.1)
        for _ in range(2):  # EM by hand: the mean adapted posterior, twice
            prior = adapter(logits, prior).softmax(1).mean(0)
            prior = prior / prior.sum()
    out = method(x)
    assert torch.allclose(method.prior, prior, atol=1e-5)
    assert torch.allclose(out, adapter(logits, prior), atol=1e-4)
    assert changed(before, model) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert not any(p.requires_grad for p in adapter.parameters())


def test_prior_follows_a_label_shift_within_one_batch():
    # an identity adapter on a model that is sure of class 3: π̂ jumps to class 3
    model = tiny_net()
    model[8].bias.data[3] = 50.0
    method = LabelShiftTTA(model, LabelShiftAdapter(10), lr=1e-8)
    method(images(16))
    assert method.prior[3] > 0.95
    lagging = LabelShiftTTA(tiny_net(), LabelShiftAdapter(10), prior_momentum=0.9)
    lagging.model[8].bias.data[3] = 50.0
    lagging(images(16))
    assert lagging.prior[3] < 0.2  # an EMA over batches lags the shift
