"""Sample orders within one domain for the class-correlated and label-shift streams.

``dirichlet_order`` (the literature's Dirichlet stream), ``slots_order`` (this library's
earlier, weaker one) and ``label_shift_order`` (SAR's online imbalanced label shift); each
maps labels [n] and a generator to a permutation of 0..n-1 (see :mod:`testtime.data.streams`).
"""

from __future__ import annotations

import numpy as np


def dirichlet_order(
    labels: np.ndarray,
    rng: np.random.Generator,
    delta: float | None,
    min_chunk: int = 10,
    max_tries: int = 10_000,
) -> np.ndarray:
    """Positions 0..n-1 of ``labels`` in the literature's class-correlated order.

    ``delta=None``: sorted by label (ties in random order). Otherwise, as the
    reference codebase's ``sort_by_dirichlet`` (after NOTE): C chunks (C classes);
    for each class in turn its (shuffled) samples are split over the chunks by
    proportions ~ Dirichlet(δ·1_C), zeroed for chunks that already hold ≥ n/C samples
    and renormalised (balance); the draw is repeated until every chunk holds at least
    ``min_chunk`` samples. The stream is the chunks one after another, each chunk its
    classes' parts as contiguous blocks in a shuffled class order. Small δ: a class
    lives in one chunk, a batch holds ~1 class; large δ: C blocks per chunk.
    """
    shuffled = rng.permutation(len(labels))
    if delta is None:
        return shuffled[np.argsort(labels[shuffled], kind="stable")]
    n = len(labels)
    classes = np.unique(labels)
    n_chunks = len(classes)
    for _ in range(max_tries):
        sizes = np.zeros(n_chunks, dtype=np.int64)
        parts: list[list[np.ndarray]] = [[] for _ in range(n_chunks)]  # per chunk, per class
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            props = rng.dirichlet(np.full(n_chunks, delta)) * (sizes < n / n_chunks)
            props = props / props.sum()
            cuts = (np.cumsum(props) * len(members)).astype(int)[:-1]
            for j, part in enumerate(np.split(members, cuts)):
                parts[j].append(part)
                sizes[j] += len(part)
        if sizes.min() >= min(min_chunk, n // n_chunks):
            break
    else:
        raise ValueError(
            f"no Dirichlet(delta={delta}) order gives every chunk {min_chunk} samples; "
            "try another delta"
        )
    order = [parts[j][k] for j in range(n_chunks) for k in rng.permutation(len(classes))]
    return np.concatenate(order)


def slots_order(
    labels: np.ndarray, rng: np.random.Generator, delta: float | None, slots: int | None
) -> np.ndarray:
    """Positions 0..n-1 of ``labels`` in this library's earlier correlated order.

    ``delta=None``: sorted by label. Otherwise each class's samples are spread over
    ``slots`` (default n / C) consecutive time slots with proportions drawn from
    Dirichlet(δ, …, δ), samples shuffled within a slot. Weaker than the literature's
    order for the same δ: classes share slots, so batches hold many classes.
    """
    shuffled = rng.permutation(len(labels))
    if delta is None:
        return shuffled[np.argsort(labels[shuffled], kind="stable")]
    n_slots = slots or max(1, len(labels) // len(np.unique(labels)))
    slot_of = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = shuffled[labels[shuffled] == c]
        props = rng.dirichlet(np.full(n_slots, delta))
        cuts = np.rint(np.cumsum(props)[:-1] * len(members)).astype(int)
        for s, part in enumerate(np.split(members, cuts)):
            slot_of[part] = s
    order = rng.permutation(len(labels))
    return order[np.argsort(slot_of[order], kind="stable")]


def label_shift_order(
    labels: np.ndarray, rng: np.random.Generator, imbalance_ratio: float
) -> np.ndarray:
    """SAR's online imbalanced label shift over positions 0..n-1 of ``labels``.

    One segment per class (in shuffled class order) of n/C samples; in segment k the
    class is ``order[k]`` with probability IR/(IR + C − 1), any other with
    1/(IR + C − 1). Sampling is without replacement: an exhausted class is skipped
    (the probabilities are renormalised over the classes that still have images).
    """
    classes = np.unique(labels)
    c = len(classes)
    pools = [list(rng.permutation(np.flatnonzero(labels == k))) for k in classes]
    class_order = rng.permutation(c)
    n = len(labels)
    out = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for t in range(n):
        dominant = class_order[min(t * c // n, c - 1)]
        w_dom = imbalance_ratio if pools[dominant] else 0.0
        others = [k for k in range(c) if k != dominant and pools[k]]
        r = u[t] * (w_dom + len(others))
        k = dominant if r < w_dom else others[min(int(r - w_dom), len(others) - 1)]
        out[t] = pools[k].pop()
    return out
