"""CAFA: class Gaussians from source features, Mahalanobis alignment loss."""

from __future__ import annotations

import torch

from testtime.adapt import CAFA
from testtime.adapt.cafa import class_gaussians
from testtime.adapt.params import FeatureHook, configure_norm

from .tiny import changed, images, source_pair, state, tiny_net


def test_class_gaussians_are_per_class_feature_moments():
    model = configure_norm(tiny_net(), "frozen")
    hook = FeatureHook(model)
    x, y = source_pair(100)
    means, factors = class_gaussians(model, hook, (x, y), shrinkage=0.1, covariance="class")
    model(x)
    feats = hook.pop()
    assert means.shape == (10, 8) and factors.shape == (10, 8, 8)
    assert torch.allclose(means[3], feats[y == 3].mean(0), atol=1e-5)
    eye = torch.eye(8, dtype=torch.float64)
    # the factor L of class c satisfies L Lᵀ = Σ_c⁻¹
    cov = torch.cov(feats[y == 3].T.double())
    shrunk = 0.9 * cov + 0.1 * cov.diagonal().mean() * eye
    prec = factors[3].double() @ factors[3].double().T
    assert torch.allclose(prec @ shrunk, eye, atol=1e-3)
    # tied: one pooled within-class covariance, (Σ_c Σ_i (z − μ_c)(z − μ_c)ᵀ) / (N − C)
    _, tied = class_gaussians(model, hook, (x, y), shrinkage=0.1)
    z = feats.double()
    centred = z - means.double()[y]
    pooled = centred.T @ centred / (len(z) - 10)
    pooled = 0.9 * pooled + 0.1 * pooled.diagonal().mean() * eye
    for c in (0, 7):
        prec = tied[c].double() @ tied[c].double().T
        assert torch.allclose(prec @ pooled, eye, atol=1e-3)


def test_cafa_updates_norm_affine_and_aligns_features():
    model = tiny_net()
    before = state(model)
    method = CAFA(model, source_pair(), lr=1e-2)
    x = images(32, seed=5)

    def loss() -> float:
        with torch.no_grad():
            logits = model(x)
            dist = method.mahalanobis(method.hook.pop())
            own = dist.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
            return float((own.log() - dist.sum(1).log()).mean())

    method(x)  # configures the model (BN batch statistics) and takes a first step
    start = loss()
    for _ in range(10):
        method(x)
    assert loss() < start
    assert changed(before, model) == {"1.weight", "1.bias", "4.weight", "4.bias"}
