"""Tensor-only augmentations: one draw per batch (the reference), hue, identities, range."""

from __future__ import annotations

import colorsys

import pytest
import torch

from testtime.adapt.augment import (
    COTTA_AUGMENT,
    SOFT_AUGMENT,
    Augment,
    adjust_hue,
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
    assert torch.allclose(adjust_hue(x, torch.zeros(6)), x, atol=1e-5)
    assert torch.equal(random_hflip(x, 0.0), x) and torch.equal(random_hflip(x, 1.0), x.flip(-1))


def test_hue_shift_matches_colorsys():
    x = images(2, hw=3)
    shift = torch.tensor([0.05, -0.06])
    out = adjust_hue(x, shift)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                h, s, v = colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())
                expected = colorsys.hsv_to_rgb((h + shift[b].item()) % 1.0, s, v)
                assert torch.allclose(out[b, :, i, j], torch.tensor(expected), atol=1e-5)


def test_colour_ops_follow_the_given_order():
    x = images(2, hw=6)
    torch.manual_seed(0)
    a = color_jitter(x, 0.4, 0.3, 0.5, 0.06, (0.7, 1.3), order=[0, 1, 2, 3, 4])
    torch.manual_seed(0)
    b = color_jitter(x, 0.4, 0.3, 0.5, 0.06, (0.7, 1.3), order=[4, 3, 2, 1, 0])
    assert not torch.allclose(a, b)  # same draws, another order: another image


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(flat, (0.5, 2.0)), flat, atol=1e-6)
    noise = torch.rand(2, 3, 16, 16)
    assert gaussian_blur(noise, (1.0, 1.0)).std() < noise.std()


def test_translation_is_whole_pixels_of_the_padded_size():
    # a single bright pixel moves by an integer number of pixels, at most 1/16 of 2n
    x = torch.zeros(1, 3, 32, 32)
    x[..., 16, 16] = 1.0
    torch.manual_seed(3)
    y = random_affine(x, 0.0, 1 / 16, (1.0, 1.0))
    r, c = divmod(int(y[0, 0].argmax()), 32)
    assert y[0, 0].max() > 0.99 and abs(r - 16) <= 4 and abs(c - 16) <= 4


def test_one_draw_per_batch_by_default_and_per_image_on_request():
    x = images(1, hw=16).repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    y = COTTA_AUGMENT(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    # the same image gets the same transform (up to the per-pixel noise)
    assert (y[0] - y[1]).abs().max() < 0.05
    torch.manual_seed(0)
    z = Augment(per_image=True)(x)
    assert (z[0] - z[1]).abs().max() > 0.05
    # the soft (ImageNet) variant perturbs less than the CIFAR one, on average
    torch.manual_seed(0)
    soft = torch.stack([(SOFT_AUGMENT(x) - x).abs().mean() for _ in range(20)]).mean()
    torch.manual_seed(0)
    strong = torch.stack([(COTTA_AUGMENT(x) - x).abs().mean() for _ in range(20)]).mean()
    assert soft < strong
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        COTTA_AUGMENT(torch.zeros(3, 8))
