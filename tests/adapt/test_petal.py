"""PETAL: SWAG prior from source data, prior regulariser, Fisher-guided restore."""

from __future__ import annotations

import torch

from testtime.adapt import PETAL
from testtime.adapt.common import interpolated_quantile
from testtime.adapt.petal import swag_moments

from .tiny import changed, images, source_pair, state, tiny_net


def test_swag_moments_leave_the_model_alone_and_average_the_snapshots():
    model = tiny_net()
    before = state(model)
    mean, var = swag_moments(model, source_pair(40), epochs=3, batch_size=20)
    assert not changed(before, model)
    assert len(mean) == len(list(model.parameters()))
    assert all((v >= 0).all() for v in var) and any((v > 0).any() for v in var)
    # two snapshots (after passes 2 and 3): the mean moved away from the trained point
    assert any(not torch.allclose(m, p) for m, p in zip(mean, model.parameters(), strict=True))


def test_interpolated_quantile_matches_numpy_linear():
    values = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])
    assert abs(float(interpolated_quantile(values, 0.3)) - 2.2) < 1e-6  # position 0.3·4 = 1.2
    assert float(interpolated_quantile(values, 1.0)) == 5.0


def test_fisher_restore_resets_the_least_informative_weights():
    model = tiny_net()
    prior = ([p.detach().clone() for p in model.parameters()],
             [torch.full_like(p, 1e-2) for p in model.parameters()])  # fmt: skip
    method = PETAL(model, prior=prior, n_augs=0, restore_quantile=0.2)
    method(images(8))
    total = sum(p.numel() for p in method.params)
    at_source = sum(
        int((p == p0).sum()) for p, p0 in zip(method.params, method.source_params, strict=True)
    )
    assert 0.15 * total <= at_source < total  # ~the restored quantile sits exactly at source
    assert method.prior_weight == 1e-9  # the reference's CIFAR-10 setting


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


def test_petal_builds_its_prior_from_source_data():
    method = PETAL(tiny_net(), source_data=source_pair(40), n_augs=0)
    assert len(method.prior_mean) == len(method.params)
