"""Diagonal Fisher from the model's own labels."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt.fisher import estimate_fisher
from testtime.adapt.params import collect_norm_params

from .tiny import source_pair, tiny_net


def test_fisher_is_squared_self_labelled_gradient_and_ignores_labels():
    model = tiny_net().requires_grad_(False)
    params = collect_norm_params(model)[0]
    x, y = source_pair(40)
    f1 = estimate_fisher(model, params, (x, y), batch_size=40)
    f2 = estimate_fisher(model, params, (x, torch.zeros_like(y)), batch_size=40)
    assert all(torch.equal(a, b) for a, b in zip(f1, f2, strict=True))
    assert not any(p.requires_grad for p in params)  # flags restored
    for p in params:
        p.requires_grad_(True)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, logits.argmax(1))
    grads = torch.autograd.grad(loss, params)
    assert all(torch.allclose(f, g**2) for f, g in zip(f1, grads, strict=True))


def test_fisher_respects_max_samples_and_empty_data():
    model = tiny_net()
    params = collect_norm_params(model)[0]
    x, y = source_pair(40)
    capped = estimate_fisher(model, params, (x, y), batch_size=10, max_samples=10)
    first = estimate_fisher(model, params, (x[:10], y[:10]), batch_size=10)
    assert all(torch.allclose(a, b) for a, b in zip(capped, first, strict=True))
    with pytest.raises(ValueError, match="no images"):
        estimate_fisher(model, params, [], method="EATA")
