"""EATA/ETA: entropy and redundancy filters, the Fisher anti-forgetting term."""

from __future__ import annotations

import math

import pytest
import torch

from testtime.adapt import EATA, ETA
from testtime.adapt.params import collect_norm_params

from .tiny import (
    changed,
    images,
    shifted_accuracy,
    source_pair,
    state,
    template_data,
    tiny_net,
    trained_net,
)


def test_no_reliable_sample_means_no_update():
    model = tiny_net()
    before = state(model)
    method = ETA(model, e_margin=1e-6)
    method(images(16))
    assert not changed(before, model) and method.backwards == 0
    assert method.mean_probs is None


def test_entropy_filter_and_redundancy_filter_select_samples():
    method = ETA(tiny_net(), e_margin=0.4 * math.log(10))
    logits = torch.full((4, 10), 0.0)
    logits[0, 3] = logits[1, 3] = 20.0  # two confident, identical predictions
    idx, ent = method.select(logits)
    assert idx.tolist() == [0, 1] and (ent < 1e-3).all()
    # the EMA now points at class 3: the same predictions are redundant next time
    idx, _ = method.select(logits)
    assert idx.numel() == 0
    other = logits.clone()
    other[0, 3], other[0, 7] = 0.0, 20.0
    idx, _ = method.select(other)
    assert idx.tolist() == [0]


def test_eta_updates_only_norm_affine():
    model = tiny_net()
    before = state(model)
    method = ETA(model, e_margin=3.0)
    method(images(16))
    assert changed(before, model) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert method.backwards == 1


def test_fisher_regulariser_pulls_towards_source():
    def drift(beta: float) -> float:
        model = tiny_net()
        source = [p.detach().clone() for p in collect_norm_params(model)[0]]
        method = EATA(model, source_pair(), fisher_alpha=beta, e_margin=3.0, d_margin=1.1, lr=5e-2)
        method.fisher = [torch.ones_like(f) for f in method.fisher]  # a strong, even pull
        for s in range(10):
            method(images(16, seed=s))
        params = collect_norm_params(model)[0]
        return sum(float((p.detach() - s).norm()) for p, s in zip(params, source, strict=True))

    assert drift(50.0) < 0.5 * drift(0.0)


def test_eata_validates_its_options():
    with pytest.raises(ValueError, match="EATA needs source_data"):
        EATA(tiny_net())
    with pytest.raises(ValueError, match="use 'eata'"):
        ETA(tiny_net(), source_data=source_pair())
    with pytest.raises(ValueError, match="fisher_alpha must be >= 0"):
        EATA(tiny_net(), source_pair(), fisher_alpha=-1.0)


def test_eta_and_eata_adapt_under_shift():
    x, y = template_data(200, 3)
    assert shifted_accuracy(ETA(trained_net())) > 0.6
    assert shifted_accuracy(EATA(trained_net(), (x, y))) > 0.6


def test_eata_step_weights_kept_samples_by_exp_of_margin_minus_entropy():
    # the kept set and the weights exp(E0 − E) recomputed by hand from the entropies
    x, _ = template_data(16, 3)
    margin = 1.2
    probe = trained_net().train()
    ent = -(probe(x).softmax(1) * probe(x).log_softmax(1)).sum(1).detach()
    keep = ent < margin
    assert 0 < int(keep.sum()) < 16  # the filter matters on this batch
    ref = trained_net().train()
    ref_params = collect_norm_params(ref)[0]
    logits = ref(x)
    e = -(logits.softmax(1) * logits.log_softmax(1)).sum(1)
    loss = (e[keep] * torch.exp(margin - ent[keep])).mean()
    grads = torch.autograd.grad(loss, ref_params)
    model = trained_net()
    method = ETA(model, e_margin=margin, optimizer="sgd", lr=1.0, momentum=0.0)
    start = [p.detach().clone() for p in collect_norm_params(model)[0]]
    method(x)
    for p, p0, g in zip(collect_norm_params(model)[0], start, grads, strict=True):
        assert torch.allclose(p, p0 - g, atol=1e-6)
    kept = probe(x).softmax(1)[keep].mean(0).detach()
    assert torch.allclose(method.mean_probs, kept, atol=1e-6)
