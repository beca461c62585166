"""CIFAR-10-C: build it with our generator, read the official layout, serve domains.

Official layout (Hendrycks & Dietterich, ICLR 2019): one ``<corruption>.npy`` per
corruption, uint8 (5·N, 32, 32, 3) = severities 1..5 × the N test images, and
``labels.npy`` (5·N,). :func:`build_cifar10c` writes that layout (or, when asked for
only some severities, one ``<corruption>-<severity>.npy`` of N images per severity,
which :func:`load_cifar10c` also reads). Our test images are in
:func:`~testtime.data.cifar10.load_cifar10` order (sorted by class), not the
official test order; ``labels.npy`` matches the images either way.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from testtime.data.cifar10 import cache_dir
from testtime.data.corruptions import ALL, CORRUPTIONS, SEVERITIES, STANDARD, corrupt
from testtime.data.demo import load_test_set
from testtime.store.atomic import atomic_write_bytes

SHAPE = (32, 32, 3)


# Bumped whenever a corruption's output changes, so that a stale cached build is never
# read: 2 = frost from the generator's photos (was: procedural textures).
GENERATOR_VERSION = 2


def default_root(n_images: int, seed: int = 0) -> Path:
    """Where :func:`build_cifar10c` caches a build of ``n_images`` test images."""
    return cache_dir() / f"cifar10c-v{GENERATOR_VERSION}-n{n_images}-seed{seed}"


def _file(root: Path, corruption: str, severity: int | None) -> Path:
    return root / (f"{corruption}.npy" if severity is None else f"{corruption}-{severity}.npy")


def _save(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write_bytes(path, buf.getvalue())


def _complete(path: Path, shape: tuple[int, ...]) -> bool:
    """A complete uint8 result from an earlier run (resumable builds skip it)."""
    try:
        arr = _open(str(path))
    except (OSError, ValueError):
        return False
    return arr.dtype == np.uint8 and arr.shape == shape


def build_cifar10c(
    out_dir: str | os.PathLike | None = None,
    corruptions: Sequence[str] = STANDARD,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    *,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    chunk: int = 500,
    progress: bool = True,
) -> Path:
    """Generate CIFAR-10-C into ``out_dir`` (default :func:`default_root`); returns it.

    ``images``/``labels``/``indices`` default to :func:`testtime.data.demo.load_test_set`
    (the full test set, else the shipped subset). Each file is written atomically and
    skipped when already complete, so an interrupted build resumes where it stopped.
    """
    for name in corruptions:
        CORRUPTIONS.get(name)
    severities = sorted(set(severities))
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ValueError(f"severities must be a non-empty subset of 1..5, got {severities}")
    if images is None:
        images, labels, indices = load_test_set()
    elif labels is None or len(labels) != len(images):
        raise ValueError("pass labels (one per image) together with images")
    if indices is None:
        indices = np.arange(len(images))
    n = len(images)
    root = Path(out_dir) if out_dir is not None else default_root(n, seed)
    root.mkdir(parents=True, exist_ok=True)
    full = severities == list(SEVERITIES)
    lab_path = root / "labels.npy"  # the same labels for every severity block
    if not _complete(lab_path, (5 * n,)):
        _save(lab_path, np.tile(np.asarray(labels), 5).astype(np.uint8))
    jobs = [
        (name, sevs)
        for name in corruptions
        for sevs in ([None] if full else severities)
        if not _complete(_file(root, name, sevs), (n * (5 if sevs is None else 1), *SHAPE))
    ]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("CIFAR-10-C", total=sum(n * (5 if s is None else 1) for _, s in jobs))
        for name, sev in jobs:
            out = []
            for s in SEVERITIES if sev is None else (sev,):
                bar.update(task, description=f"{name} s{s}")
                for a in range(0, n, chunk):
                    out.append(
                        corrupt(images[a : a + chunk], name, s, seed, indices[a : a + chunk])
                    )
                    bar.advance(task, len(out[-1]))
            _save(_file(root, name, sev), np.concatenate(out))
    return root


def _open(path: str) -> np.ndarray:
    """Memory-map an .npy file (cached until the file changes)."""
    st = os.stat(path)
    return _open_cached(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _open_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def load_cifar10c(
    root: str | os.PathLike, corruption: str, severity: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N,32,32,3], labels int64 [N])`` of one corruption and severity.

    Reads the official ``<corruption>.npy`` (5·N rows, severity blocks in order) or a
    per-severity ``<corruption>-<severity>.npy`` from :func:`build_cifar10c`.
    """
    images, labels = _domain(Path(root), corruption, severity)
    return np.array(images), labels


def _domain(root: Path, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """A memory-mapped view of one domain's images, and its labels."""
    CORRUPTIONS.get(corruption)
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of 1..5, got {severity!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10-C directory {root} does not exist")
    full, single = _file(root, corruption, None), _file(root, corruption, severity)
    path, blocks = (full, 5) if full.exists() else (single, 1)
    if not path.exists():
        present = sorted(p.stem for p in root.glob("*.npy"))
        raise FileNotFoundError(
            f"no {full.name} (or {single.name}) in {root}; present: {', '.join(present) or 'none'}"
        )
    arr = _open(str(path))
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != SHAPE or len(arr) % blocks:
        raise ValueError(
            f"{path} has {arr.dtype} {list(arr.shape)}; expected uint8 "
            f"[{'5·N' if blocks == 5 else 'N'}, 32, 32, 3]"
        )
    n = len(arr) // blocks
    start = (severity - 1) * n if blocks == 5 else 0
    return arr[start : start + n], _read_labels(root, n)


def _read_labels(root: Path, n: int) -> np.ndarray:
    path = root / "labels.npy"
    if not path.exists():
        raise FileNotFoundError(f"no labels.npy in {root}")
    lab = _open(str(path))
    if lab.ndim != 1 or len(lab) not in (n, 5 * n):
        raise ValueError(f"{path} has shape {list(lab.shape)}; expected ({5 * n},) or ({n},)")
    return np.asarray(lab[:n]).astype(np.int64)


class CIFAR10C:
    """CIFAR-10-C domains as a stream source: ``source(corruption, severity, indices)``.

    With ``root`` (an official or built directory) images are read from it. Without,
    a cached build for ``seed`` (:func:`default_root`) is used where its files exist
    and the rest is generated on the fly from the test set (full copy, else the shipped
    subset) — identical to a build, because corruptions are seeded per image index.
    """

    def __init__(self, root: str | os.PathLike | None = None, seed: int = 0) -> None:
        self.seed = seed
        self.root = Path(root) if root is not None else None
        if self.root is not None:
            if not self.root.is_dir():
                raise FileNotFoundError(f"CIFAR-10-C directory {self.root} does not exist")
            self.labels = _read_labels(self.root, self._n_from_files())
        else:
            self._images, self.labels, self._indices = load_test_set()

    def _n_from_files(self) -> int:
        for name in ALL:
            for path, blocks in ((_file(self.root, name, None), 5), *(
                    (_file(self.root, name, s), 1) for s in SEVERITIES)):  # fmt: skip
                if path.exists():
                    return len(_open(str(path))) // blocks
        raise FileNotFoundError(f"no <corruption>.npy files in {self.root}")

    def __call__(
        self, corruption: str, severity: int, indices: np.ndarray | None = None
    ) -> np.ndarray:
        idx = np.arange(len(self.labels)) if indices is None else np.asarray(indices)
        root = self.root or default_root(len(self.labels), self.seed)
        if self.root is not None or any(
            _file(root, corruption, s).exists() for s in (None, severity)
        ):
            return np.asarray(_domain(root, corruption, severity)[0][idx])
        return corrupt(self._images[idx], corruption, severity, self.seed, self._indices[idx])

    def domain(self, corruption: str, severity: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """All ``(images, labels)`` of one domain."""
        return self(corruption, severity), self.labels.copy()
