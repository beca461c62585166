"""CIFAR-10-C corruptions, seeded and batched (Hendrycks & Dietterich, ICLR 2019).

``corrupt(images, name, severity, seed, indices)`` applies one of the 15 standard
corruptions (plus 4 extras) with the 32×32 parameter table of the original
``make_cifar_c.py``. Every random draw for image ``i`` comes from a NumPy generator
seeded with ``(seed, corruption id, severity, i)``, so any subset or batch of
images gives exactly the result of the full run; the deterministic work (filters,
resampling) is vectorised over the batch.

Deviations from the released generator (which needed ImageMagick and used unseeded
global randomness):

- ``motion_blur`` and the snow layer use our own line-kernel convolution (one-sided
  Gaussian-weighted line of ``2·radius + 1`` taps, nearest-pixel offsets, edges
  replicated), which is what ImageMagick's ``-motion-blur`` computes.
- ``frost`` overlays crops of the generator's own five frost photos, shipped at its
  CIFAR scale in ``assets/frost_cifar.npz`` (from the ``imagecorruptions`` 1.1.2
  distribution, Apache-2.0; ``assets/FROST.md``); decoded with Pillow, not OpenCV
  (the JPEG photos may differ by a grey level).
- ``spatter``'s water branch uses our own Canny / distance / histogram-equalisation
  steps instead of OpenCV's.
- Results are rounded to uint8 (the original truncated).

Kept on purpose: ``glass_blur``'s pixel "swap" only copies the neighbour (NumPy view
aliasing in the original), which is what the published CIFAR-10-C contains.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from testtime.registry import Registry

SIZE = 32
_CHUNK = 500  # images per vectorised call
SEVERITIES = (1, 2, 3, 4, 5)
STANDARD = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = STANDARD + EXTRA

# A corruption maps (x float32 [N,32,32,3] in [0,1], one Generator per image,
# severity parameters) to a float array in [0,1] units (clipped afterwards).
CorruptionFn = Callable[[np.ndarray, list[np.random.Generator], Any], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: CorruptionFn
    params: tuple  # one entry per severity 1..5


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def _register(name: str, *params: Any) -> Callable[[CorruptionFn], CorruptionFn]:
    assert name in ALL and len(params) == len(SEVERITIES)

    def deco(fn: CorruptionFn) -> CorruptionFn:
        CORRUPTIONS.register(name)(lambda: Corruption(name, fn, params))
        return fn

    return deco


# ---------------------------------------------------------------- helpers


def _draw(
    rngs: Sequence[np.random.Generator], fn: Callable[[np.random.Generator], Any]
) -> np.ndarray:
    """Stack one draw per image (each image has its own generator)."""
    return np.stack([np.asarray(fn(r)) for r in rngs])


def _spatial(x: np.ndarray, sigma: float) -> tuple[float, ...]:
    """A per-axis sigma that blurs only the two image axes of [N,H,W(,C)]."""
    return (0.0, sigma, sigma) + (0.0,) * (x.ndim - 3)


def _gaussian(
    x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0
) -> np.ndarray:
    # skimage.filters.gaussian's defaults (mode 'nearest', truncate 4), as the original used.
    return ndimage.gaussian_filter(x, _spatial(x, sigma), mode=mode, truncate=truncate)


@lru_cache
def _zoom_matrix(size: int, factor: float) -> np.ndarray:
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


def _separable(x: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply the same linear map to both image axes of every image of x [N,H,W,C]."""
    mat = mat.astype(x.dtype)
    along_w = np.matmul(mat, x)  # matmul acts on the last two axes: (W, C)
    return np.matmul(mat, along_w.swapaxes(1, 2)).swapaxes(1, 2)


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of every image of [N,H,W,C] by ``factor`` (≥ 1), keeping H×W."""
    return _separable(x, _zoom_matrix(x.shape[1], round(float(factor), 6)))


def _line_blur(x: np.ndarray, radius: int, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
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


def _plasma(rngs: Sequence[np.random.Generator], decay: float, size: int = SIZE) -> np.ndarray:
    """Diamond-square plasma fractal in [0,1], one [size,size] map per generator.

    The random offsets at each level are ``wibble · U(-wibble, wibble)`` with
    ``wibble`` starting at 100 and divided by ``decay`` per level, as in the
    CIFAR-C fog; all levels are vectorised over the batch.
    """
    n = len(rngs)
    noise = _draw(rngs, lambda r: r.uniform(-1.0, 1.0, size * size - 1))
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


def _gray(x: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (OpenCV's RGB2GRAY), keeping a channel axis."""
    return x @ np.array([[0.299], [0.587], [0.114]], dtype=x.dtype)


# ---------------------------------------------------------------- noise


@_register("gaussian_noise", 0.04, 0.06, 0.08, 0.09, 0.10)
def _gaussian_noise(x, rngs, sigma):
    return x + sigma * _draw(rngs, lambda r: r.standard_normal(x.shape[1:], dtype=np.float32))


@_register("shot_noise", 500, 250, 100, 75, 50)
def _shot_noise(x, rngs, lam):
    return np.stack([r.poisson(xi * lam) for r, xi in zip(rngs, x, strict=True)]) / lam


@_register("impulse_noise", 0.01, 0.02, 0.03, 0.05, 0.07)
def _impulse_noise(x, rngs, amount):
    # skimage's 's&p': each element flips with p=amount, to salt or pepper with p=.5.
    u = _draw(rngs, lambda r: r.random((2, *x.shape[1:]), dtype=np.float32))
    return np.where(u[:, 0] < amount, (u[:, 1] < 0.5).astype(x.dtype), x)


@_register("speckle_noise", 0.06, 0.1, 0.12, 0.16, 0.2)
def _speckle_noise(x, rngs, sigma):
    return x + x * sigma * _draw(rngs, lambda r: r.standard_normal(x.shape[1:], dtype=np.float32))


# ---------------------------------------------------------------- blur


@_register("gaussian_blur", 0.4, 0.6, 0.7, 0.8, 1.0)
def _gaussian_blur(x, rngs, sigma):
    return _gaussian(x, sigma)


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


@_register("defocus_blur", (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
def _defocus_blur(x, rngs, p):
    kernel = _disk(*p).astype(x.dtype)
    # 'mirror' is OpenCV's BORDER_REFLECT_101, the default of cv2.filter2D.
    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")


@_register("glass_blur", (0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
def _glass_blur(x, rngs, p):
    sigma, delta, iterations = p
    # The table only uses delta == 1, which the one-shot gather below relies on.
    assert delta == 1
    x = np.floor(np.clip(_gaussian(x, sigma), 0, 1) * 255) / 255
    n, h, w, _ = x.shape
    inner = np.arange(h - delta, delta, -1)  # rows/cols 31..2, visited in this order
    # Offsets in randint(-1, 1) = {-1, 0}, drawn (dx, dy) per pixel in visiting order.
    d = _draw(
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
    return _gaussian(x, sigma)


@_register("motion_blur", (6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
def _motion_blur(x, rngs, p):
    angles = _draw(rngs, lambda r: r.uniform(-45, 45))
    return _line_blur(x, p[0], p[1], angles)


@lru_cache
def _zoom_blur_operator(size: int, end: float) -> np.ndarray:
    """The mean of the image and its zooms by arange(1, end, .01) as one [size², size²] map."""
    factors = np.arange(1, end, 0.01)
    op = np.eye(size * size)
    for f in factors:
        m = _zoom_matrix(size, round(float(f), 6))
        op += np.kron(m, m)  # row-major pixels: out[i,j] = Σ m[i,k] m[j,l] x[k,l]
    return (op / (len(factors) + 1)).astype(np.float32)


@_register("zoom_blur", 1.06, 1.11, 1.16, 1.21, 1.26)
def _zoom_blur(x, rngs, end):
    n, h, w, c = x.shape
    # One large matrix product instead of ~25 zooms per image.
    flat = x.transpose(1, 2, 0, 3).reshape(h * w, n * c)
    return (_zoom_blur_operator(h, end) @ flat).reshape(h, w, n, c).transpose(2, 0, 1, 3)


# ---------------------------------------------------------------- weather


@_register(
    "snow",
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
def _snow(x, rngs, p):
    loc, scale, zoom, threshold, radius, sigma, blend = p
    layer = _draw(rngs, lambda r: r.normal(loc, scale, x.shape[1:3]).astype(np.float32))
    angles = _draw(rngs, lambda r: r.uniform(-135, -45))
    layer = _clipped_zoom(layer[..., None], zoom)
    layer[layer < threshold] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255) / 255  # the original went through an 8-bit image
    flakes = _line_blur(layer.astype(np.float32), radius, sigma, angles)
    x = blend * x + (1 - blend) * np.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + flakes + np.rot90(flakes, k=2, axes=(1, 2))


# Frost: the photos of the released generator at its CIFAR scale, shipped as package data.
FROST_PATH = Path(__file__).parent / "assets" / "frost_cifar.npz"


@lru_cache
def frost_textures() -> tuple[np.ndarray, ...]:
    """The five frost photos CIFAR-10-C draws from (``frost1.png`` … ``frost5.jpg``),
    float32 RGB in [0, 1], at the released generator's scale (``cv2.resize`` by 0.2,
    bilinear: pixel (5i + 2, 5j + 2) of each photo). See ``assets/FROST.md``."""
    with np.load(FROST_PATH) as data:
        return tuple(data[f"frost{i}"].astype(np.float32) / 255.0 for i in range(1, 6))


@_register("frost", (1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
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


@_register("fog", (0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
def _fog(x, rngs, p):
    strength, decay = p
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    fogged = x + strength * _plasma(rngs, decay)[..., None].astype(x.dtype)
    return fogged * peak / (peak + strength)


@_register(
    "spatter",
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)
def _spatter(x, rngs, p):
    loc, scale, sigma, threshold, intensity, mud = p
    liquid = _gaussian(_draw(rngs, lambda r: r.normal(loc, scale, x.shape[1:3])), sigma)
    liquid[liquid < threshold] = 0
    if mud:
        m = _gaussian((liquid > threshold).astype(np.float64), intensity)
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


# ---------------------------------------------------------------- digital / colour


@_register("brightness", 0.05, 0.1, 0.15, 0.2, 0.3)
def _brightness(x, rngs, c):
    # HSV value + c with hue and saturation kept: RGB scales by V'/V (black becomes grey).
    v = x.max(axis=3, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v_new / np.maximum(v, 1e-12), v_new)


@_register("saturate", (0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))
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


@_register("contrast", 0.75, 0.5, 0.4, 0.3, 0.15)
def _contrast(x, rngs, c):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


@_register(
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
    moved = src_pts + _draw(rngs, lambda r: r.uniform(-affine, affine, size=(3, 2)))
    fields = _draw(rngs, lambda r: r.uniform(-1, 1, size=(2, h, w)))
    # Affine M maps source (x, y) to moved points; warping samples the source at M⁻¹(p).
    a = np.concatenate([src_pts, np.ones((3, 1))], axis=1)
    m = np.linalg.solve(a[None], moved).transpose(0, 2, 1)  # [N,2,3]
    inv = np.linalg.inv(m[:, :, :2])
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pts = np.stack([xx, yy], axis=-1)[None] - m[:, None, None, :, 2]  # [N,H,W,2] as (x, y)
    src = np.einsum("nij,nhwj->nhwi", inv, pts)
    x = _sample(x, src[..., 1], src[..., 0], mode="mirror")  # cv2 BORDER_REFLECT_101
    # Then a smooth random displacement field (second resampling, as originally).
    disp = ndimage.gaussian_filter(fields, (0, 0, sigma, sigma), mode="reflect", truncate=3) * alpha
    return _sample(x, yy[None] + disp[:, 1], xx[None] + disp[:, 0], mode="reflect")


def _fold(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map integer indices outside 0..n-1 back inside, as scipy.ndimage's boundary modes do."""
    if mode == "mirror":  # d c b | a b c d | c b a  (OpenCV's BORDER_REFLECT_101)
        period = 2 * n - 2
        i = np.mod(i, period)
        return np.where(i >= n, period - i, i)
    period = 2 * n  # "reflect": d c b a | a b c d | d c b a
    i = np.mod(i, period)
    return np.where(i >= n, period - 1 - i, i)


def _sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
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


@_register("pixelate", 0.95, 0.9, 0.85, 0.75, 0.65)
def _pixelate(x, rngs, scale):
    size = x.shape[1]
    small = int(size * scale)
    # BOX down then BOX up, as one linear map per axis (no 8-bit rounding in between).
    resample = _box_resize_matrix(small, size) @ _box_resize_matrix(size, small)
    return _separable(x, resample)


@_register("jpeg_compression", 80, 65, 58, 50, 40)
def _jpeg_compression(x, rngs, quality):
    out = np.empty_like(x)
    for i, img in enumerate(np.rint(x * 255).astype(np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buf), dtype=np.float32) / 255
    return out


# ---------------------------------------------------------------- public API


def corruption_id(name: str) -> int:
    """A stable small integer per corruption (its position in :data:`ALL`), used in seeds."""
    CORRUPTIONS.get(name)  # clear error for unknown names
    return ALL.index(name)


def image_rngs(
    seed: int, name: str, severity: int, indices: np.ndarray
) -> list[np.random.Generator]:
    """One generator per image, seeded with ``(seed, corruption id, severity, index)``."""
    cid = corruption_id(name)
    return [np.random.default_rng([seed, cid, severity, int(i)]) for i in indices]


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Corrupt uint8 images [N,32,32,3] with ``name`` at ``severity`` (1..5).

    ``indices`` are the images' positions in the full data set (default 0..N-1);
    they seed the per-image randomness, so ``corrupt(x[a:b], ..., indices=range(a, b))``
    equals ``corrupt(x, ...)[a:b]``. Returns a new uint8 array of the same shape.
    """
    spec = CORRUPTIONS.create(name)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(
            f"images must be a uint8 numpy array, got {type(images).__name__} "
            f"{getattr(images, 'dtype', '')}".rstrip()
        )
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"images must have shape [N, {SIZE}, {SIZE}, 3], got {list(images.shape)}")
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of 1..5, got {severity!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    if idx.shape != (len(images),) or (idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0)):
        raise ValueError(f"indices must be {len(images)} non-negative integers, one per image")
    if len(images) == 0:
        return images.copy()
    out = np.empty_like(images)
    # Chunks bound the float temporaries (elastic's coordinates are ~100 KB per image);
    # per-image seeding makes the result independent of the chunking.
    for a in range(0, len(images), _CHUNK):
        x = images[a : a + _CHUNK].astype(np.float32) / 255
        rngs = image_rngs(int(seed), name, severity, idx[a : a + _CHUNK])
        res = spec.fn(x, rngs, spec.params[severity - 1])
        out[a : a + _CHUNK] = np.clip(np.rint(np.asarray(res) * 255), 0, 255)
    return out
