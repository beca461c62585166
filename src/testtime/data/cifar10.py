"""CIFAR-10 as uint8 arrays, from an ImageFolder tree, its .tar.gz, or torchvision.

Decoding 60,000 JPEGs takes ~25 s, so the arrays are cached as ``.npy`` under
:func:`cache_dir` (never in the repository).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from testtime.store.atomic import atomic_write_bytes

CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SPLITS = ("train", "test")

# Where the project's shared copy lives, relative to the repository root.
_SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cifar10"


def cache_dir() -> Path:
    """``$TESTTIME_CACHE`` or ``~/.cache/testtime``."""
    root = os.environ.get("TESTTIME_CACHE") or Path.home() / ".cache" / "testtime"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_source() -> Path | None:
    """The shared CIFAR-10 archive or folder if present (``$TESTTIME_CIFAR10`` overrides)."""
    env = os.environ.get("TESTTIME_CIFAR10")
    candidates = [Path(env)] if env else [_SHARED / "cifar10-jpeg.tar.gz", _SHARED]
    for c in candidates:
        if c.is_file() or (c.is_dir() and (c / "test").is_dir()):
            return c
    return None


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)


def _sorted_items(entries: list[tuple[str, bytes]], split: str) -> list[tuple[int, str, bytes]]:
    """``(label, file name, encoded bytes)`` sorted by (class, file name): the index order."""
    items = []
    for name, data in entries:
        parts = Path(name).parts
        if len(parts) >= 3 and parts[-3] == split and parts[-2] in CLASSES:
            items.append((CLASSES.index(parts[-2]), parts[-1], data))
    if not items:
        raise FileNotFoundError(f"no {split}/<class>/*.jpg images found")
    items.sort(key=lambda t: (t[0], t[1]))
    return items


def _read_imagefolder(
    entries: list[tuple[str, bytes]], split: str
) -> tuple[np.ndarray, np.ndarray]:
    items = _sorted_items(entries, split)
    images = np.stack([_decode(d) for _, _, d in items])
    labels = np.array([c for c, _, _ in items], dtype=np.int64)
    return images, labels


def _entries(source: Path, split: str) -> list[tuple[str, bytes]]:
    if source.is_file():
        out = []
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                if member.isfile() and f"{split}/" in member.name:
                    out.append((member.name, tar.extractfile(member).read()))
        return out
    return [
        (str(p.relative_to(source)), p.read_bytes())
        for p in sorted((source / split).glob("*/*"))
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    ]


def load_cifar10(
    split: str = "test", source: str | os.PathLike | None = None, cache: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 32, 32, 3], labels int64 [N])`` for ``split``.

    ``source`` is an ImageFolder directory (``train/<class>/*.jpg``) or a
    ``.tar.gz`` of one; by default the project's shared copy.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    src = Path(source) if source is not None else default_source()
    if src is None:
        raise FileNotFoundError(
            "CIFAR-10 not found: pass an ImageFolder directory or .tar.gz, or set TESTTIME_CIFAR10 "
            "(torchvision users: see testtime.data.cifar10.from_torchvision)"
        )
    if not src.exists():
        raise FileNotFoundError(f"CIFAR-10 source {src} does not exist")
    key = f"cifar10-{split}-{src.stat().st_size}"
    img_path, lab_path = cache_dir() / f"{key}-x.npy", cache_dir() / f"{key}-y.npy"
    if cache and img_path.exists() and lab_path.exists():
        return np.load(img_path), np.load(lab_path)
    images, labels = _read_imagefolder(_entries(src, split), split)
    if cache:
        for path, arr in ((img_path, images), (lab_path, labels)):
            buf = io.BytesIO()
            np.save(buf, arr)
            atomic_write_bytes(path, buf.getvalue())
    return images, labels


def from_torchvision(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Arrays from a ``torchvision.datasets.CIFAR10`` instance (``.data``, ``.targets``)."""
    return np.asarray(dataset.data, dtype=np.uint8), np.asarray(dataset.targets, dtype=np.int64)
