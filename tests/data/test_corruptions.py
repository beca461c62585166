import colorsys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from testtime.data import corruptions as C
from testtime.data.corruptions import ALL, EXTRA, STANDARD, corrupt, digital, image_rngs, ops
from testtime.data.demo import load_demo_subset
from testtime.registry import UnknownName


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    x, _, _ = load_demo_subset()
    return x[::125]  # 8 real images, one or two per class


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


def test_names():
    assert len(STANDARD) == 15 and len(EXTRA) == 4
    assert sorted(C.CORRUPTIONS.names()) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_severity_changes_the_images(images, name):
    for s in C.SEVERITIES:
        out = corrupt(images, name, s, seed=3)
        assert out.dtype == np.uint8 and out.shape == images.shape
        assert _mad(out, images) > 0.3, (name, s)


# Corruptions whose parameter tables are not ordered by pixel distortion in the
# original: elastic (largest affine at severity 1), glass (iterations vs sigma),
# frost (image weight drops), saturate (desaturate then oversaturate), motion
# (random angles make neighbouring severities close).
NOT_MONOTONE = {"elastic_transform", "glass_blur", "frost", "saturate", "motion_blur"}


@pytest.mark.parametrize("name", sorted(set(ALL) - NOT_MONOTONE))
def test_distortion_grows_with_severity(images, name):
    diffs = [_mad(corrupt(images, name, s, seed=0), images) for s in C.SEVERITIES]
    assert all(b > a for a, b in zip(diffs, diffs[1:], strict=False)), diffs


@pytest.mark.parametrize("name", sorted(NOT_MONOTONE))
def test_non_monotone_ones_still_distort_most_at_some_high_severity(images, name):
    diffs = [_mad(corrupt(images, name, s, seed=0), images) for s in C.SEVERITIES]
    assert max(diffs[2:]) > 2.0, diffs


@pytest.mark.parametrize("name", ALL)
def test_subset_equals_slice_of_full_run(images, name):
    full = corrupt(images, name, 4, seed=7)
    part = corrupt(images[3:6], name, 4, seed=7, indices=[3, 4, 5])
    np.testing.assert_array_equal(part, full[3:6])
    # a permuted batch with the right indices gives the same images
    perm = np.array([5, 0, 2])
    np.testing.assert_array_equal(corrupt(images[perm], name, 4, 7, indices=perm), full[perm])


RANDOM = set(ALL) - {"defocus_blur", "gaussian_blur", "zoom_blur", "brightness",
                     "contrast", "pixelate", "jpeg_compression", "saturate"}  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_seed_matters_only_for_random_corruptions(images, name):
    a, b = corrupt(images, name, 5, seed=0), corrupt(images, name, 5, seed=1)
    assert (not np.array_equal(a, b)) == (name in RANDOM)
    np.testing.assert_array_equal(a, corrupt(images, name, 5, seed=0))


def test_glass_blur_matches_the_sequential_reference(images):
    """The vectorised gather equals the original per-pixel loop (with its view-aliasing 'swap')."""
    x = images[:3]
    sigma, delta, iterations = C.CORRUPTIONS.create("glass_blur").params[4]
    ref = np.floor(np.clip(ops.gaussian(x.astype(np.float32) / 255, sigma), 0, 1) * 255) / 255
    rngs = image_rngs(0, "glass_blur", 5, np.arange(3))
    for n, rng in enumerate(rngs):
        d = rng.integers(-delta, delta, size=(iterations, 30, 30, 2))
        img = ref[n]
        for it in range(iterations):
            for a, h in enumerate(range(31, 1, -1)):
                for b, w in enumerate(range(31, 1, -1)):
                    dx, dy = d[it, a, b]
                    img[h, w], img[h + dy, w + dx] = img[h + dy, w + dx], img[h, w]
    expected = np.clip(np.rint(ops.gaussian(ref, sigma) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(corrupt(x, "glass_blur", 5, seed=0), expected)


@pytest.mark.parametrize("factor", [1.03, 1.17, 1.26, 2.25])
def test_clipped_zoom_matches_scipy_zoom(factor):
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    ch = int(np.ceil(32 / factor))
    top = (32 - ch) // 2
    ref = np.stack(
        [ndimage.zoom(i[top : top + ch, top : top + ch], (factor, factor, 1), order=1) for i in x]
    )
    trim = (ref.shape[1] - 32) // 2
    np.testing.assert_allclose(
        ops.clipped_zoom(x, factor), ref[:, trim : trim + 32, trim : trim + 32], atol=1e-5
    )


def test_pixelate_matches_pil_box_resizing(images):
    out = corrupt(images, "pixelate", 5)
    small = int(32 * 0.65)
    ref = np.stack(
        [
            np.asarray(
                Image.fromarray(i).resize((small, small), Image.BOX).resize((32, 32), Image.BOX)
            )
            for i in images
        ]
    )
    assert np.abs(out.astype(int) - ref).max() <= 2  # PIL rounds to 8 bits in between


@pytest.mark.parametrize("name, severity", [("brightness", 5), ("saturate", 2), ("saturate", 5)])
def test_hsv_corruptions_match_colorsys(images, name, severity):
    x = images[:2].astype(np.float64) / 255
    x[0, :4, :4] = 0.5  # grey pixels: hue 0, so added saturation tints them red
    x[0, 4:8, :4] = 0.0
    c = C.CORRUPTIONS.create(name).params[severity - 1]
    ref = np.empty_like(x)
    for idx in np.ndindex(x.shape[:3]):
        h, s, v = colorsys.rgb_to_hsv(*x[idx])
        if name == "brightness":
            v = min(max(v + c, 0), 1)
        else:
            s = min(max(s * c[0] + c[1], 0), 1)
        ref[idx] = colorsys.hsv_to_rgb(h, s, v)
    got = C.CORRUPTIONS.create(name).fn(x, [], c)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_motion_blur_kernel_is_a_one_sided_line():
    x = np.zeros((2, 32, 32, 1), dtype=np.float32)
    x[:, 16, 8] = 1
    out = ops.line_blur(x, radius=3, sigma=2.0, angles_deg=np.array([0.0, 90.0]))
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), 1, atol=1e-6)
    # tap i of pixel p reads p + i·(cos a, sin a): the trail extends left of / above the dot
    row = out[0, 16, :, 0]
    assert np.count_nonzero(out[0]) == 7 and np.all(np.diff(row[2:9]) > 0) and row[8] > 0
    assert np.count_nonzero(out[1, 10:17, 8]) == 7 and np.count_nonzero(out[1]) == 7


def test_plasma_is_normalised_and_differs_per_image():
    p = ops.plasma(image_rngs(0, "fog", 5, np.arange(3)), decay=2.0)
    assert p.shape == (3, 32, 32)
    np.testing.assert_allclose(p.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(p.max(axis=(1, 2)), 1)
    assert not np.allclose(p[0], p[1])


def test_frost_uses_the_photos_at_cifar_scale():
    t = C.frost_textures()
    shapes = [a.shape for a in t]
    assert shapes == [(120, 180, 3), (63, 112, 3), (63, 112, 3), (70, 105, 3), (99, 132, 3)]
    means = np.mean([a.mean(axis=(0, 1)) for a in t], axis=0)
    assert means[2] > means[1] > means[0]  # the photos are bluish
    # one image: c0·x + c1·(a 32×32 crop of one photo), hand-checked against all crops
    x = np.full((1, 32, 32, 3), 0.5, np.float32)
    out = C.CORRUPTIONS.create("frost").fn(
        x, C.image_rngs(0, "frost", 5, np.arange(1)), (0.75, 0.45)
    )
    crop = (out[0] - 0.75 * 0.5) / 0.45
    found = any(
        np.allclose(crop, a[r : r + 32, c : c + 32], atol=1e-5)
        for a in t
        for r in range(a.shape[0] - 32)
        for c in range(a.shape[1] - 32)
    )
    assert found


def test_empty_batch(images):
    assert corrupt(images[:0], "fog", 1).shape == (0, 32, 32, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images": np.zeros((2, 32, 32, 3), np.float32)}, "uint8"),
        ({"images": np.zeros((2, 28, 28, 3), np.uint8)}, "shape"),
        ({"severity": 0}, "severity"),
        ({"severity": 6}, "severity"),
        ({"seed": -1}, "seed"),
        ({"indices": [0]}, "indices"),
        ({"indices": [-1, 0]}, "indices"),
    ],
)
def test_bad_input(kwargs, message):
    args = {"images": np.zeros((2, 32, 32, 3), np.uint8), "name": "fog", "severity": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        corrupt(**args)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UnknownName, match="gaussian_noise"):
        corrupt(np.zeros((1, 32, 32, 3), np.uint8), "gaussian-noise", 1)


@pytest.mark.parametrize("name", ["elastic_transform", "snow", "glass_blur"])
def test_result_does_not_depend_on_internal_chunking(images, monkeypatch, name):
    full = corrupt(images, name, 5, seed=1)
    monkeypatch.setattr(C, "_CHUNK", 3)
    np.testing.assert_array_equal(corrupt(images, name, 5, seed=1), full)


def test_zoom_blur_operator_is_the_mean_of_the_zooms(images):
    x = images[:3].astype(np.float32) / 255
    factors = np.arange(1, 1.26, 0.01)
    ref = (x + sum(ops.clipped_zoom(x, f) for f in factors)) / (len(factors) + 1)
    np.testing.assert_allclose(C.CORRUPTIONS.create("zoom_blur").fn(x, [], 1.26), ref, atol=1e-5)


@pytest.mark.parametrize("mode", ["mirror", "reflect"])
def test_bilinear_sampler_matches_map_coordinates(mode):
    rng = np.random.default_rng(0)
    x = rng.random((3, 32, 32, 3)).astype(np.float32)
    rows = rng.uniform(-4, 35, (3, 32, 32))
    cols = rng.uniform(-4, 35, (3, 32, 32))
    ref = np.stack(
        [
            np.stack(
                [
                    ndimage.map_coordinates(img[..., c], [r, k], order=1, mode=mode)
                    for c in range(3)
                ],
                axis=-1,
            )
            for img, r, k in zip(x, rows, cols, strict=True)
        ]
    )
    np.testing.assert_allclose(digital.sample(x, rows, cols, mode), ref, atol=1e-5)
