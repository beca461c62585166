"""Blur corruptions: Gaussian, defocus (aliased disk), glass, motion, zoom."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from testtime.data.corruptions.ops import draw, gaussian, line_blur, zoom_matrix
from testtime.data.corruptions.registry import register


@register("gaussian_blur", 0.4, 0.6, 0.7, 0.8, 1.0)
def _gaussian_blur(x, rngs, sigma):
    return gaussian(x, sigma)


@lru_cache
def _disk(radius: float, alias_sigma: float) -> np.ndarray:
    """The original's aliased disk on a 17×17 grid, smoothed by a 3×3 Gaussian."""
    grid = np.arange(-8, 9)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_sigma**2))
    g /= g.sum()
    disk = ndimage.correlate1d(
        ndimage.correlate1d(disk, g, axis=0, mode="mirror"), g, axis=1, mode="mirror"
    )
    keep = np.flatnonzero(disk.any(axis=0))  # crop the all-zero border
    return disk[keep[0] : keep[-1] + 1, keep[0] : keep[-1] + 1]


@register("defocus_blur", (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
def _defocus_blur(x, rngs, p):
    kernel = _disk(*p).astype(x.dtype)
    # 'mirror' is OpenCV's BORDER_REFLECT_101, the default of cv2.filter2D.
    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")


@register("glass_blur", (0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
def _glass_blur(x, rngs, p):
    sigma, delta, iterations = p
    # The table only uses delta == 1, which the one-shot gather below relies on.
    assert delta == 1
    x = np.floor(np.clip(gaussian(x, sigma), 0, 1) * 255) / 255
    n, h, w, _ = x.shape
    inner = np.arange(h - delta, delta, -1)  # rows/cols 31..2, visited in this order
    # Offsets in randint(-1, 1) = {-1, 0}, drawn (dx, dy) per pixel in visiting order.
    d = draw(
        rngs, lambda r: r.integers(-delta, delta, size=(iterations, len(inner), len(inner), 2))
    )
    nn = np.arange(n)[:, None, None]
    rows, cols = inner[None, :, None], inner[None, None, :]
    for it in range(iterations):
        # The original "swap" `x[h,w], x[h',w'] = x[h',w'], x[h,w]` assigns through
        # NumPy views, so it only copies the neighbour into (h, w). With offsets in
        # {-1, 0} and pixels visited in decreasing order, every neighbour read is still
        # unvisited, so the sequential loop equals this single gather (kept exactly, so
        # the difficulty matches CIFAR-10-C).
        src = x[nn, rows + d[:, it, :, :, 1], cols + d[:, it, :, :, 0]]
        x = x.copy()
        x[:, inner[:, None], inner[None, :]] = src
    return gaussian(x, sigma)


@register("motion_blur", (6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
def _motion_blur(x, rngs, p):
    angles = draw(rngs, lambda r: r.uniform(-45, 45))
    return line_blur(x, p[0], p[1], angles)


@lru_cache
def _zoom_blur_operator(size: int, end: float) -> np.ndarray:
    """The mean of the image and its zooms by arange(1, end, .01) as one [size², size²] map."""
    factors = np.arange(1, end, 0.01)
    op = np.eye(size * size)
    for f in factors:
        m = zoom_matrix(size, round(float(f), 6))
        op += np.kron(m, m)  # row-major pixels: out[i,j] = Σ m[i,k] m[j,l] x[k,l]
    return (op / (len(factors) + 1)).astype(np.float32)


@register("zoom_blur", 1.06, 1.11, 1.16, 1.21, 1.26)
def _zoom_blur(x, rngs, end):
    n, h, w, c = x.shape
    # One large matrix product instead of ~25 zooms per image.
    flat = x.transpose(1, 2, 0, 3).reshape(h * w, n * c)
    return (_zoom_blur_operator(h, end) @ flat).reshape(h, w, n, c).transpose(2, 0, 1, 3)
