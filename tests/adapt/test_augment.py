"""Tensor-only augmentations: per-sample randomness, identities, value range."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt.augment import (
    COTTA_AUGMENT,
    SOFT_AUGMENT,
    color_jitter,
    gaussian_blur,
    random_affine,
    random_hflip,
)

from .tiny import images


def test_identity_settings_are_identities():
    x = images(6, hw=12)
    assert torch.allclose(random_affine(x, 0.0, 0.0, (1.0, 1.0)), x, atol=1e-5)
    assert torch.allclose(gaussian_blur(x, (1e-4, 1e-4)), x, atol=1e-5)
    assert torch.allclose(color_jitter(x, 0.0, 0.0, 0.0), x, atol=1e-6)
    assert torch.equal(random_hflip(x, 0.0), x) and torch.equal(random_hflip(x, 1.0), x.flip(-1))


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(flat, (0.5, 2.0)), flat, atol=1e-6)
    noise = torch.rand(2, 3, 16, 16)
    assert gaussian_blur(noise, (1.0, 1.0)).std() < noise.std()


def test_pipeline_is_random_per_sample_and_stays_in_range():
    x = images(1, hw=16).repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    y = COTTA_AUGMENT(x)
    assert y.shape == x.shape
    assert y.min() >= x.min() and y.max() <= x.max()
    assert not torch.allclose(y[0], y[1])  # same image, different draws
    # the soft (ImageNet) variant perturbs less than the CIFAR one
    torch.manual_seed(0)
    soft = (SOFT_AUGMENT(x) - x).abs().mean()
    assert soft < (y - x).abs().mean()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        COTTA_AUGMENT(torch.zeros(3, 8))
