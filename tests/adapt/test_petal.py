"""PETAL: SWA prior from source data, prior regulariser, Fisher-guided restore."""

from __future__ import annotations

import torch

from testtime.adapt import PETAL
from testtime.adapt.petal import swa_moments

from .tiny import changed, images, source_pair, state, tiny_net


def test_swa_moments_leave_the_model_alone():
    model = tiny_net()
    before = state(model)
    mean, var = swa_moments(model, source_pair(), max_batches=4, batch_size=20)
    assert not changed(before, model)
    assert len(mean) == len(list(model.parameters()))
    assert all((v >= 0).all() for v in var) and any((v > 0).any() for v in var)


def test_fisher_restore_resets_the_least_informative_weights():
    model = tiny_net()
    method = PETAL(model, source_data=source_pair(), n_augs=0, restore_quantile=0.2)
    method(images(8))
    total = sum(p.numel() for p in method.params)
    at_source = sum(
        int((p == p0).sum()) for p, p0 in zip(method.params, method.source_params, strict=True)
    )
    assert at_source >= 0.2 * total  # ≥ the restored quantile sits exactly at source
    assert at_source < total


def test_prior_term_pulls_towards_the_prior_mean():
    def distance(weight: float) -> float:
        model = tiny_net()
        prior = ([p.detach().clone() for p in model.parameters()],
                 [torch.full_like(p, 1e-4) for p in model.parameters()])  # fmt: skip
        method = PETAL(model, prior=prior, prior_weight=weight, n_augs=0, restore_quantile=0.0)
        for s in range(5):
            method(images(8, seed=s))
        return sum(
            float((p.detach() - m).norm()) for p, m in zip(method.params, prior[0], strict=True)
        )

    # Adam bounds the pull to ~lr per step, so the prior keeps weights at lr-scale jitter
    assert distance(1e-2) < 0.6 * distance(0.0)
