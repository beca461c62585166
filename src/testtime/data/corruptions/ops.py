"""Image operators shared by the corruptions, vectorised over a batch [N,H,W(,C)].

Per-image draws (:func:`draw`), the original's Gaussian filter, clipped zoom as an
exact linear map, ImageMagick-style motion blur, the diamond-square plasma and luma.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage

from testtime.data.corruptions.registry import SIZE


def draw(
    rngs: Sequence[np.random.Generator], fn: Callable[[np.random.Generator], Any]
) -> np.ndarray:
    """Stack one draw per image (each image has its own generator)."""
    return np.stack([np.asarray(fn(r)) for r in rngs])


def spatial(x: np.ndarray, sigma: float) -> tuple[float, ...]:
    """A per-axis sigma that blurs only the two image axes of [N,H,W(,C)]."""
    return (0.0, sigma, sigma) + (0.0,) * (x.ndim - 3)


def gaussian(
    x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> np.ndarray:
    # skimage.filters.gaussian's defaults (mode 'nearest', truncate 4), as the original used.
    return ndimage.gaussian_filter(x, spatial(x, sigma), mode=mode, truncate=truncate)


@lru_cache
def zoom_matrix(size: int, factor: float) -> np.ndarray:
    """The original's ``clipped_zoom`` along one axis as a [size, size] matrix.

    It crops the centre ``ceil(size/factor)`` pixels, zooms them with
    ``scipy.ndimage.zoom(order=1)`` and trims back to ``size``; order-1 zoom is
    separable, so zooming the unit impulses gives the exact linear map.
    """
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    zoomed = ndimage.zoom(np.eye(crop), (factor, 1), order=1)
    trim = (zoomed.shape[0] - size) // 2
    mat = np.zeros((size, size))
    mat[:, top : top + crop] = zoomed[trim : trim + size]
    return mat


def separable(x: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply the same linear map to both image axes of every image of x [N,H,W,C]."""
    mat = mat.astype(x.dtype)
    along_w = np.matmul(mat, x)  # matmul acts on the last two axes: (W, C)
    return np.matmul(mat, along_w.swapaxes(1, 2)).swapaxes(1, 2)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of every image of [N,H,W,C] by ``factor`` (≥ 1), keeping H×W."""
    return separable(x, zoom_matrix(x.shape[1], round(float(factor), 6)))


def line_blur(x: np.ndarray, radius: int, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    """Motion blur: a one-sided line kernel of ``2·radius + 1`` Gaussian-weighted taps.

    Each image of ``x`` [N,H,W,C] has its own angle a; like ImageMagick, tap i reads
    the pixel nearest to p + i·(cos a, sin a) (x right, y down), with the image
    edge replicated.
    """
    n, h, w, _ = x.shape
    taps = 2 * radius + 1
    weights = np.exp(-(np.arange(taps) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    rad = np.deg2rad(angles_deg)
    padded = np.pad(x, ((0, 0), (taps, taps), (taps, taps), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for i, wt in enumerate(weights):
        dy = np.ceil(i * np.sin(rad) - 0.5).astype(int)  # ImageMagick rounds halves down
        dx = np.ceil(i * np.cos(rad) - 0.5).astype(int)
        # Few distinct offsets per tap: add shifted slices for each group of images.
        offsets, group = np.unique(np.stack([dy, dx], axis=1), axis=0, return_inverse=True)
        for g, (oy, ox) in enumerate(offsets):
            sel = np.flatnonzero(group.ravel() == g)
            out[sel] += wt * padded[sel, taps + oy : taps + oy + h, taps + ox : taps + ox + w]
    return out


def plasma(rngs: Sequence[np.random.Generator], decay: float, size: int = SIZE) -> np.ndarray:
    """Diamond-square plasma fractal in [0,1], one [size,size] map per generator.

    The random offsets at each level are ``wibble · U(-wibble, wibble)`` with
    ``wibble`` starting at 100 and divided by ``decay`` per level, as in the
    CIFAR-C fog; all levels are vectorised over the batch.
    """
    n = len(rngs)
    noise = draw(rngs, lambda r: r.uniform(-1.0, 1.0, size * size - 1))
    used = 0

    def wibbled(mean: np.ndarray) -> np.ndarray:
        nonlocal used
        k = mean.shape[1] * mean.shape[2]
        offset = noise[:, used : used + k].reshape(mean.shape)
        used += k
        return mean / 4 + wibble * wibble * offset

    m = np.zeros((n, size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        m[:, half::step, half::step] = wibbled(square)
        centres, corners = m[:, half::step, half::step], m[:, ::step, ::step]
        m[:, ::step, half::step] = wibbled(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        )
        m[:, half::step, ::step] = wibbled(
            centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        )
        step, wibble = half, wibble / decay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


def gray(x: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (OpenCV's RGB2GRAY), keeping a channel axis."""
    return x @ np.array([[0.299], [0.587], [0.114]], dtype=x.dtype)
