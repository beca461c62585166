"""Test streams for the adaptation protocols (CIFAR-10-C style).

``make_stream(setting, images_by_domain, labels, batch_size, seed, **options)``
returns a re-iterable :class:`Stream` of :class:`Batch` es. Settings:

- ``continual`` — domains one after another (CoTTA order), no reset (Wang et al., CVPR 2022).
- ``reset`` — the same stream, but ``Batch.reset`` is set on the first batch of each
  domain so the caller resets the method (the "reset each shift" protocol).
- ``gradual`` — per domain, severity 1→2→3→4→5→4→3→2→1 (CoTTA's gradual setting).
- ``mixed`` — all domains' images shuffled together (SAR's mixed shifts, Niu et al., ICLR 2023).
- ``correlated`` — per domain, samples sorted by label (``delta=None``) or the
  literature's Dirichlet class-correlated order (NOTE, Gong et al. 2022; RoTTA, Yuan
  et al. 2023), built as the reference codebase (mariodoebler/test-time-adaptation,
  ``sort_by_dirichlet``) builds it: C chunks, each class split over the chunks by
  Dirichlet(δ) proportions, every chunk holding its classes in contiguous blocks in
  a random class order (δ 0.05, batch 64: ~1.2 distinct classes per batch; i.i.d.: ~10).
- ``correlated-slots`` — this library's earlier class-correlated order: each class
  spread over n/C time slots by Dirichlet(δ), samples shuffled within a slot (δ 0.05,
  batch 64: ~7 distinct classes per batch — much weaker than ``correlated``).
- ``label-shift`` — SAR's online imbalanced label shift: per domain, one segment per
  class (class order shuffled), each drawing its dominant class with probability
  IR/(IR + C − 1) and every other class with 1/(IR + C − 1).

Labels come class-sorted from :func:`testtime.data.cifar10.load_cifar10`, so every
i.i.d. order is a seeded shuffle: the same seed gives the same stream for every method.
Batches never span two domains (except in ``mixed``); a domain's last batch may be smaller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from testtime.data.corruptions import STANDARD
from testtime.data.stream_orders import dirichlet_order, label_shift_order, slots_order

SETTINGS = (
    "continual", "reset", "gradual", "mixed", "correlated", "correlated-slots", "label-shift",
)  # fmt: skip
CONTINUAL_ORDER = STANDARD  # CoTTA's order of the 15 corruptions
GRADUAL_SEVERITIES = (1, 2, 3, 4, 5, 4, 3, 2, 1)

# (domain, severity, indices into labels) -> uint8 images [len(indices), H, W, 3]
DomainSource = Callable[[str, int, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Batch:
    """One step of a stream. ``x`` is float32 NCHW in [0,1]; ``y`` int64 labels."""

    x: torch.Tensor
    y: torch.Tensor
    domain: str  # "mixed" in the mixed setting
    severity: int
    new_domain: bool  # first batch of a new (domain, severity) segment
    reset: bool  # the protocol asks the caller to reset the method before this batch
    indices: np.ndarray  # positions of the images in ``labels``
    sample_domains: tuple[str, ...]  # the domain of every sample


@dataclass(frozen=True)
class Segment:
    """A run of images from one domain at one severity (or the whole mixed stream)."""

    domain: str
    severity: int
    indices: np.ndarray
    sample_domains: np.ndarray | None = None  # per-sample domain names (mixed only)


@dataclass
class Stream:
    """A planned, re-iterable stream; images are fetched from the source batch by batch."""

    setting: str
    segments: list[Segment]
    labels: np.ndarray
    source: DomainSource
    batch_size: int
    reset_each_shift: bool = False
    domains: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.domains = tuple(dict.fromkeys(str(d) for s in self.segments for d in _names(s)))

    def __len__(self) -> int:
        return sum(-(-len(s.indices) // self.batch_size) for s in self.segments)

    @property
    def n_images(self) -> int:
        return sum(len(s.indices) for s in self.segments)

    def batch_labels(self) -> Iterator[np.ndarray]:
        """The labels of every batch, in stream order (no image is fetched)."""
        for seg in self.segments:
            for start in range(0, len(seg.indices), self.batch_size):
                yield self.labels[seg.indices[start : start + self.batch_size]]

    def class_statistics(self) -> dict[str, float]:
        """Mean (and min/max) number of distinct classes per batch: how class-
        correlated the stream is (the reference's Dirichlet order, δ 0.05, batch 64:
        ~1.2; i.i.d.: ~10 for CIFAR-10)."""
        counts = [len(np.unique(y)) for y in self.batch_labels()]
        return {
            "distinct_classes_per_batch": float(np.mean(counts)),
            "min_distinct_classes": int(np.min(counts)),
            "max_distinct_classes": int(np.max(counts)),
            "batches": len(counts),
        }

    def __iter__(self) -> Iterator[Batch]:
        for seg in self.segments:
            names = _names(seg)
            for start in range(0, len(seg.indices), self.batch_size):
                idx = seg.indices[start : start + self.batch_size]
                who = names[start : start + self.batch_size]
                parts = {
                    d: self.source(str(d), seg.severity, idx[who == d]) for d in dict.fromkeys(who)
                }
                shape = next(iter(parts.values())).shape[1:]
                images = np.empty((len(idx), *shape), dtype=np.uint8)
                for d, part in parts.items():
                    images[who == d] = part
                first = start == 0
                yield Batch(
                    x=to_tensor(images),
                    y=torch.from_numpy(self.labels[idx].astype(np.int64)),
                    domain=seg.domain,
                    severity=seg.severity,
                    new_domain=first,
                    reset=first and self.reset_each_shift,
                    indices=idx,
                    sample_domains=tuple(str(d) for d in who),
                )


def _names(seg: Segment) -> np.ndarray:
    if seg.sample_domains is not None:
        return seg.sample_domains
    return np.full(len(seg.indices), seg.domain, dtype=object)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


def _as_source(images_by_domain: Mapping[str, np.ndarray] | DomainSource, n: int) -> DomainSource:
    if callable(images_by_domain):
        return images_by_domain
    for name, arr in images_by_domain.items():
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4:
            raise ValueError(
                f"domain {name!r}: expected uint8 images [N,H,W,C], got "
                f"{type(arr).__name__} {getattr(arr, 'shape', '')}"
            )
        if len(arr) != n:
            raise ValueError(f"domain {name!r} has {len(arr)} images but there are {n} labels")
    return lambda name, severity, idx: images_by_domain[name][idx]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def make_stream(
    setting: str,
    images_by_domain: Mapping[str, np.ndarray] | DomainSource,
    labels: np.ndarray,
    batch_size: int,
    seed: int = 0,
    *,
    domains: Sequence[str] | None = None,
    severity: int = 5,
    limit: int | None = None,
    delta: float | None = None,
    slots: int | None = None,
    imbalance_ratio: float = 500_000.0,
    reset_each_shift: bool | None = None,
) -> Stream:
    """Plan a stream for ``setting`` (one of :data:`SETTINGS`).

    ``images_by_domain``: a mapping name -> uint8 images [N,H,W,C] aligned with
    ``labels`` [N], or a :data:`DomainSource` callable (needed for ``gradual``; e.g.
    :class:`testtime.data.cifar10c.CIFAR10C`). ``domains``: their order (default: the
    mapping's keys, or the CoTTA order for a callable). ``limit``: images per domain
    (a seeded random subset, the same for every domain). ``delta``/``slots``: the
    ``correlated``/``correlated-slots`` options (``slots`` only for the latter);
    ``imbalance_ratio``: the ``label-shift`` IR.
    ``reset_each_shift`` (default: only for ``reset``) sets ``Batch.reset`` at each new domain.
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown stream setting {setting!r}; valid: {', '.join(SETTINGS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-D integer array")
    if delta is not None and delta <= 0:
        raise ValueError(f"delta must be positive, got {delta}")
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    if setting == "gradual" and not callable(images_by_domain):
        raise ValueError(
            "the gradual setting needs images at every severity: pass a source "
            "callable (domain, severity, indices) -> images, e.g. CIFAR10C()"
        )
    source = _as_source(images_by_domain, len(labels))
    if domains is None:
        domains = CONTINUAL_ORDER if callable(images_by_domain) else list(images_by_domain)
    domains = list(domains)
    if not domains:
        raise ValueError("no domains given")
    if not callable(images_by_domain):
        missing = [d for d in domains if d not in images_by_domain]
        if missing:
            raise ValueError(
                f"domains {missing} not in images_by_domain (has: {', '.join(images_by_domain)})"
            )

    subset = _rng(seed, 0).permutation(len(labels))[:limit]
    segments: list[Segment] = []
    if setting == "mixed":
        who = np.repeat(np.array(domains, dtype=object), len(subset))
        idx = np.tile(subset, len(domains))
        order = _rng(seed, 1).permutation(len(idx))
        segments.append(Segment("mixed", severity, idx[order], who[order]))
    for d, name in enumerate(domains if setting != "mixed" else []):
        rng = _rng(seed, 2, d)
        sub_labels = labels[subset]
        if setting == "gradual":
            for s in GRADUAL_SEVERITIES:
                segments.append(Segment(name, s, subset[rng.permutation(len(subset))]))
            continue
        if setting == "correlated":
            order = dirichlet_order(sub_labels, rng, delta)
        elif setting == "correlated-slots":
            order = slots_order(sub_labels, rng, delta, slots)
        elif setting == "label-shift":
            order = label_shift_order(sub_labels, rng, imbalance_ratio)
        else:
            order = rng.permutation(len(subset))
        segments.append(Segment(name, severity, subset[order]))
    if reset_each_shift is None:
        reset_each_shift = setting == "reset"
    return Stream(setting, segments, labels, source, batch_size, reset_each_shift)
