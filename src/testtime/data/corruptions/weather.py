"""Weather corruptions: snow, frost (the generator's own photos), fog, spatter (water / mud).

Water spatter's OpenCV steps (Canny edges, histogram equalisation) are written out here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from testtime.data.corruptions.ops import clipped_zoom, draw, gaussian, gray, line_blur, plasma
from testtime.data.corruptions.registry import register


@register(
    "snow",
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
def _snow(x, rngs, p):
    loc, scale, zoom, threshold, radius, sigma, blend = p
    layer = draw(rngs, lambda r: r.normal(loc, scale, x.shape[1:3]).astype(np.float32))
    angles = draw(rngs, lambda r: r.uniform(-135, -45))
    layer = clipped_zoom(layer[..., None], zoom)
    layer[layer < threshold] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255) / 255  # the original went through an 8-bit image
    flakes = line_blur(layer.astype(np.float32), radius, sigma, angles)
    x = blend * x + (1 - blend) * np.maximum(x, gray(x) * 1.5 + 0.5)
    return x + flakes + np.rot90(flakes, k=2, axes=(1, 2))


# Frost: the photos of the released generator at its CIFAR scale, shipped as package data.
FROST_PATH = Path(__file__).resolve().parents[1] / "assets" / "frost_cifar.npz"


@lru_cache
def frost_textures() -> tuple[np.ndarray, ...]:
    """The five frost photos CIFAR-10-C draws from (``frost1.png`` … ``frost5.jpg``),
    float32 RGB in [0, 1], at the released generator's scale (``cv2.resize`` by 0.2,
    bilinear: pixel (5i + 2, 5j + 2) of each photo). See ``assets/FROST.md``."""
    with np.load(FROST_PATH) as data:
        return tuple(data[f"frost{i}"].astype(np.float32) / 255.0 for i in range(1, 6))


@register("frost", (1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
def _frost(x, rngs, p):
    """c₀·x + c₁·crop: one of the five photos and a random 32×32 crop per image (the
    original draws the photo, then the top-left corner in [0, H − 32) × [0, W − 32))."""
    textures = frost_textures()
    h, w = x.shape[1:3]
    crops = np.empty_like(x)
    for i, r in enumerate(rngs):
        t = textures[int(r.integers(len(textures)))]
        top, left = int(r.integers(0, t.shape[0] - h)), int(r.integers(0, t.shape[1] - w))
        crops[i] = t[top : top + h, left : left + w]
    return p[0] * x + p[1] * crops


@register("fog", (0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
def _fog(x, rngs, p):
    strength, decay = p
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    fogged = x + strength * plasma(rngs, decay)[..., None].astype(x.dtype)
    return fogged * peak / (peak + strength)


@register(
    "spatter",
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)
def _spatter(x, rngs, p):
    loc, scale, sigma, threshold, intensity, mud = p
    liquid = gaussian(draw(rngs, lambda r: r.normal(loc, scale, x.shape[1:3])), sigma)
    liquid[liquid < threshold] = 0
    if mud:
        m = gaussian((liquid > threshold).astype(np.float64), intensity)
        m[m < 0.8] = 0
        colour = np.array([63, 42, 20], dtype=x.dtype) / 255  # mud brown
        return x * (1 - m[..., None]) + colour * m[..., None]
    shading = _water_shading((liquid * 255).astype(np.uint8))
    m = liquid * shading
    m = m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12) * intensity
    colour = np.array([175, 238, 238], dtype=x.dtype) / 255  # pale turquoise
    return x + m[..., None] * colour


def _canny(img: np.ndarray, low: float, high: float) -> np.ndarray:
    """Canny edges of uint8 [N,H,W] (Sobel, L1 magnitude, non-maximum suppression, hysteresis)."""
    f = img.astype(np.float64)
    gx = ndimage.sobel(f, axis=2, mode="mirror")
    gy = ndimage.sobel(f, axis=1, mode="mirror")
    mag = np.abs(gx) + np.abs(gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180
    sector = np.digitize(angle, [22.5, 67.5, 112.5, 157.5]) % 4  # 0°, 45°, 90°, 135°
    padded = np.pad(mag, ((0, 0), (1, 1), (1, 1)))
    h, w = img.shape[1:]
    keep = np.zeros(mag.shape, dtype=bool)
    for s, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        behind = padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        keep |= (sector == s) & (mag > ahead) & (mag >= behind)
    weak = keep & (mag > low)
    # Hysteresis: keep weak pixels 8-connected (within an image) to a strong one.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    labels, _ = ndimage.label(weak, structure=structure)
    strong_labels = np.unique(labels[weak & (mag > high)])
    return np.isin(labels, strong_labels[strong_labels > 0])


def _equalise(img: np.ndarray) -> np.ndarray:
    """Per-image histogram equalisation of uint8 [N,H,W] (OpenCV's equalizeHist)."""
    n = img.shape[0]
    hist = np.bincount(
        (img.reshape(n, -1) + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n
    )
    hist = hist.reshape(n, 256)
    cdf = hist.cumsum(axis=1)
    first = hist[np.arange(n), (hist > 0).argmax(axis=1)][:, None]
    total = cdf[:, -1:]
    scale = 255.0 / np.maximum(total - first, 1)
    lut = np.clip(np.rint((cdf - first) * scale), 0, 255).astype(np.uint8)
    return np.take_along_axis(lut, img.reshape(n, -1).astype(np.intp), axis=1).reshape(img.shape)


def _water_shading(liquid: np.ndarray) -> np.ndarray:
    """The embossed distance-to-edge shading of the original's water spatter."""
    edges = _canny(liquid, 50, 150)
    # Distance to the nearest edge within each image (no edge: far, truncated to 20).
    dist = ndimage.distance_transform_edt(~edges, sampling=(1e3, 1, 1))
    dist = np.minimum(dist, 20)
    dist = ndimage.uniform_filter(dist, (1, 3, 3), mode="mirror").astype(np.uint8)
    dist = _equalise(dist).astype(np.float64)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
    dist = np.clip(np.rint(ndimage.correlate(dist, emboss[None], mode="mirror")), 0, 255)
    return ndimage.uniform_filter(dist, (1, 3, 3), mode="mirror")
