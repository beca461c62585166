"""The images a benchmark run needs: corrupted test domains (generated once, shared by
all methods) and the clean train images some methods take as ``source_data``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from testtime.data.streams import Stream


class Materialised:
    """The corrupted images a stream will ask for, generated once and shared by all methods."""

    def __init__(
        self, stream: Stream, source: Callable[[str, int, np.ndarray], np.ndarray]
    ) -> None:
        self.images: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        needed: dict[tuple[str, int], set[int]] = {}
        for seg in stream.segments:
            names = (
                seg.sample_domains
                if seg.sample_domains is not None
                else np.full(len(seg.indices), seg.domain, dtype=object)
            )
            for d in dict.fromkeys(names):
                needed.setdefault((str(d), seg.severity), set()).update(
                    seg.indices[names == d].tolist()
                )
        self.plan = {k: np.array(sorted(v), dtype=np.int64) for k, v in needed.items()}
        self._source = source

    def generate(self, on_domain: Callable[[str], None] | None = None) -> None:
        for (domain, severity), idx in self.plan.items():
            self.images[domain, severity] = (idx, self._source(domain, severity, idx))
            if on_domain:
                on_domain(domain)

    def __call__(self, domain: str, severity: int, indices: np.ndarray) -> np.ndarray:
        idx, images = self.images[domain, severity]
        return images[np.searchsorted(idx, indices)]


def default_domain_source(seed: int) -> tuple[Callable, np.ndarray]:
    """CIFAR-10-C from a cached build or generated on the fly (full test set, else the demo subset)."""
    from testtime.data.cifar10c import CIFAR10C

    c10c = CIFAR10C(seed=seed)
    return c10c, c10c.labels


def load_source_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``n`` clean CIFAR-10 train images (seeded subset) as a float [0,1] NCHW tensor pair."""
    if n == 0:
        return None
    from testtime.data.cifar10 import load_cifar10
    from testtime.data.streams import to_tensor

    try:
        images, labels = load_cifar10("train")
    except FileNotFoundError:
        return None  # methods that need it then fail with their own clear message
    idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(images))[:n])
    return to_tensor(images[idx]), torch.from_numpy(labels[idx].astype(np.int64))
