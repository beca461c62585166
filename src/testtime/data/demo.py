"""A shipped 1,000-image CIFAR-10 test subset (100 per class) for fresh machines.

The asset keeps the original JPEG bytes of the first 100 test images of every class
(in :func:`testtime.data.cifar10.load_cifar10` order) with their labels and their
indices in the full test set, so decoding gives exactly the pixels of the full copy
and corrupting with those indices gives exactly the images of the full CIFAR-10-C build.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from testtime.data.cifar10 import _entries, _sorted_items, default_source, load_cifar10
from testtime.store.atomic import atomic_write_bytes

DEMO_PATH = Path(__file__).parent / "assets" / "cifar10_test_demo.npz"
PER_CLASS = 100


def make_demo_subset(
    path: str | os.PathLike = DEMO_PATH, source: str | os.PathLike | None = None
) -> Path:
    """Write the asset from the CIFAR-10 JPEG archive/folder (the project's shared copy by default)."""
    src = Path(source) if source is not None else default_source()
    if src is None or not src.exists():
        raise FileNotFoundError("CIFAR-10 JPEG source not found (set TESTTIME_CIFAR10)")
    items = _sorted_items(_entries(src, "test"), "test")
    labels = np.array([c for c, _, _ in items])
    keep = np.concatenate([np.flatnonzero(labels == c)[:PER_CLASS] for c in np.unique(labels)])
    blobs = [items[i][2] for i in keep]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets.astype(np.int64),
        labels=labels[keep].astype(np.int64),
        indices=keep.astype(np.int64),
    )
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


@lru_cache(maxsize=1)
def _load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(path) as z:
        jpeg, offsets = z["jpeg"], z["offsets"]
        images = np.stack(
            [
                np.asarray(
                    Image.open(io.BytesIO(jpeg[a:b].tobytes())).convert("RGB"), dtype=np.uint8
                )
                for a, b in zip(offsets[:-1], offsets[1:], strict=True)
            ]
        )
        return images, z["labels"], z["indices"]


def load_demo_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images uint8 [1000,32,32,3], labels int64, indices into the full test set)``."""
    if not DEMO_PATH.exists():
        raise FileNotFoundError(f"demo subset {DEMO_PATH} is missing from the installation")
    images, labels, indices = _load(str(DEMO_PATH))
    return images.copy(), labels.copy(), indices.copy()


def load_test_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full CIFAR-10 test set if a copy is found, else the shipped demo subset.

    Returns ``(images, labels, indices)``; ``indices`` are positions in the full test
    set (``arange(10000)`` for the full set) and seed the corruptions.
    """
    if default_source() is not None:
        images, labels = load_cifar10("test")
        return images, labels, np.arange(len(images))
    return load_demo_subset()
