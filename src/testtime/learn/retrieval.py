"""Retrieval by embedding similarity, for test-time memories (Dynamic Cheatsheet):
a label-free default embedding (hashed character trigrams) and top-k cosine search."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch


def hashed_trigrams(text: str, dim: int = 512) -> list[float]:
    """A deterministic bag of character trigrams, hashed to ``dim`` buckets, L2-normed:
    the retrieval embedding when no embedding model is given."""
    vec = [0.0] * dim
    padded = f"  {text.lower()}  "
    for i in range(len(padded) - 2):
        h = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "big")
        vec[h % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def top_k(query: Sequence[float], keys: Sequence[Sequence[float]], k: int) -> list[int]:
    """Indices of the ``k`` keys most cosine-similar to ``query`` (best first)."""
    if not keys:
        return []
    q = torch.tensor(query, dtype=torch.float32)
    m = torch.tensor(keys, dtype=torch.float32)
    sims = (m @ q) / (m.norm(dim=1) * q.norm()).clamp_min(1e-12)
    return torch.topk(sims, min(k, len(keys))).indices.tolist()
