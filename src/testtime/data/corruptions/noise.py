"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt & pepper), speckle."""

from __future__ import annotations

import numpy as np

from testtime.data.corruptions.ops import draw
from testtime.data.corruptions.registry import register


@register("gaussian_noise", 0.04, 0.06, 0.08, 0.09, 0.10)
def _gaussian_noise(x, rngs, sigma):
    return x + sigma * draw(rngs, lambda r: r.standard_normal(x.shape[1:], dtype=np.float32))


@register("shot_noise", 500, 250, 100, 75, 50)
def _shot_noise(x, rngs, lam):
    return np.stack([r.poisson(xi * lam) for r, xi in zip(rngs, x, strict=True)]) / lam


@register("impulse_noise", 0.01, 0.02, 0.03, 0.05, 0.07)
def _impulse_noise(x, rngs, amount):
    # skimage's 's&p': each element flips with p=amount, to salt or pepper with p=.5.
    u = draw(rngs, lambda r: r.random((2, *x.shape[1:]), dtype=np.float32))
    return np.where(u[:, 0] < amount, (u[:, 1] < 0.5).astype(x.dtype), x)


@register("speckle_noise", 0.06, 0.1, 0.12, 0.16, 0.2)
def _speckle_noise(x, rngs, sigma):
    return x + x * sigma * draw(rngs, lambda r: r.standard_normal(x.shape[1:], dtype=np.float32))
