"""Digital and colour corruptions: brightness, saturate, contrast, elastic transform,
pixelate, JPEG compression."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from testtime.data.corruptions.ops import draw, separable
from testtime.data.corruptions.registry import SIZE, register


@register("brightness", 0.05, 0.1, 0.15, 0.2, 0.3)
def _brightness(x, rngs, c):
    # HSV value + c with hue and saturation kept: RGB scales by V'/V (black becomes grey).
    v = x.max(axis=3, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v_new / np.maximum(v, 1e-12), v_new)


@register("saturate", (0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))
def _saturate(x, rngs, p):
    # HSV saturation S' = clip(S·a + b): each channel becomes V - S'·V·(V - c)/(V - min).
    # Grey pixels have hue 0 (skimage), so added saturation tints them red, as originally.
    v = x.max(axis=3, keepdims=True)
    lo = x.min(axis=3, keepdims=True)
    chroma = v - lo
    s = np.where(v > 0, chroma / np.maximum(v, 1e-12), 0)
    s_new = np.clip(s * p[0] + p[1], 0, 1)
    coloured = v - s_new * v * (v - x) / np.maximum(chroma, 1e-12)
    red = np.concatenate([v, v * (1 - s_new), v * (1 - s_new)], axis=3)
    return np.where(chroma > 0, coloured, red)


@register("contrast", 0.75, 0.5, 0.4, 0.3, 0.15)
def _contrast(x, rngs, c):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


@register(
    "elastic_transform",
    *[(SIZE * a, SIZE * s, SIZE * f) for a, s, f in
      ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))],
)  # fmt: skip
def _elastic_transform(x, rngs, p):
    alpha, sigma, affine = p
    n, h, w, c = x.shape
    centre, half = np.float32(h // 2), h // 3
    src_pts = np.array(
        [
            [centre + half, centre + half],
            [centre + half, centre - half],
            [centre - half, centre - half],
        ]
    )
    moved = src_pts + draw(rngs, lambda r: r.uniform(-affine, affine, size=(3, 2)))
    fields = draw(rngs, lambda r: r.uniform(-1, 1, size=(2, h, w)))
    # Affine M maps source (x, y) to moved points; warping samples the source at M⁻¹(p).
    a = np.concatenate([src_pts, np.ones((3, 1))], axis=1)
    m = np.linalg.solve(a[None], moved).transpose(0, 2, 1)  # [N,2,3]
    inv = np.linalg.inv(m[:, :, :2])
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pts = np.stack([xx, yy], axis=-1)[None] - m[:, None, None, :, 2]  # [N,H,W,2] as (x, y)
    src = np.einsum("nij,nhwj->nhwi", inv, pts)
    x = sample(x, src[..., 1], src[..., 0], mode="mirror")  # cv2 BORDER_REFLECT_101
    # Then a smooth random displacement field (second resampling, as originally).
    disp = ndimage.gaussian_filter(fields, (0, 0, sigma, sigma), mode="reflect", truncate=3) * alpha
    return sample(x, yy[None] + disp[:, 1], xx[None] + disp[:, 0], mode="reflect")


def _fold(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map integer indices outside 0..n-1 back inside, as scipy.ndimage's boundary modes do."""
    if mode == "mirror":  # d c b | a b c d | c b a  (OpenCV's BORDER_REFLECT_101)
        period = 2 * n - 2
        i = np.mod(i, period)
        return np.where(i >= n, period - i, i)
    period = 2 * n  # "reflect": d c b a | a b c d | d c b a
    i = np.mod(i, period)
    return np.where(i >= n, period - 1 - i, i)


def sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear sample of every channel of x [N,H,W,C] at per-image [N,H,W] coordinates.

    Equals ``scipy.ndimage.map_coordinates(order=1, mode=mode)`` per channel (tested),
    with the four neighbours gathered once for all channels.
    """
    n, h, w, _ = x.shape
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    r0, c0 = r0.astype(np.intp), c0.astype(np.intp)
    batch = np.arange(n)[:, None, None]
    out = np.zeros_like(x)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        ri = _fold(r0 + dr, h, mode)
        for dc, wc in ((0, 1 - fc), (1, fc)):
            out += (wr * wc).astype(x.dtype) * x[batch, ri, _fold(c0 + dc, w, mode)]
    return out


@lru_cache
def _box_resize_matrix(src: int, dst: int) -> np.ndarray:
    """PIL's BOX resampling from ``src`` to ``dst`` pixels as a [dst, src] matrix."""
    mat = np.zeros((dst, src), dtype=np.float32)
    for j in range(src):
        impulse = np.zeros((1, src), dtype=np.float32)
        impulse[0, j] = 1
        mat[:, j] = np.asarray(Image.fromarray(impulse, mode="F").resize((dst, 1), Image.BOX))[0]
    return mat


@register("pixelate", 0.95, 0.9, 0.85, 0.75, 0.65)
def _pixelate(x, rngs, scale):
    size = x.shape[1]
    small = int(size * scale)
    # BOX down then BOX up, as one linear map per axis (no 8-bit rounding in between).
    resample = _box_resize_matrix(small, size) @ _box_resize_matrix(size, small)
    return separable(x, resample)


@register("jpeg_compression", 80, 65, 58, 50, 40)
def _jpeg_compression(x, rngs, quality):
    out = np.empty_like(x)
    for i, img in enumerate(np.rint(x * 255).astype(np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buf), dtype=np.float32) / 255
    return out
