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

Modules: :mod:`.registry` (names, severities, the registry), :mod:`.ops` (shared image
operators), one module per family (:mod:`.noise`, :mod:`.blur`, :mod:`.weather`,
:mod:`.digital`), this package the public API.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Importing the family modules registers their corruptions.
from testtime.data.corruptions import blur, digital, noise, weather  # noqa: F401
from testtime.data.corruptions.registry import (
    ALL,
    CORRUPTIONS,
    EXTRA,
    SEVERITIES,
    SIZE,
    STANDARD,
    Corruption,
    CorruptionFn,
)
from testtime.data.corruptions.weather import FROST_PATH, frost_textures

__all__ = [
    "ALL", "CORRUPTIONS", "EXTRA", "FROST_PATH", "SEVERITIES", "SIZE", "STANDARD", "Corruption",
    "CorruptionFn", "corrupt", "corruption_id", "frost_textures", "image_rngs",
]  # fmt: skip

_CHUNK = 500  # images per vectorised call


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
