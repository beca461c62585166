"""Per-sample seeds: sample j of a prompt draws from its own seeded stream, whatever
else is in the call (the embedded sampler, the HF engine and HTTP servers alike).
No torch here, so the HTTP backend stays light."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence


def row_seeds(seed: int, prompt_ids: Sequence[Sequence[int]], n: int) -> list[list[int]]:
    """Seed of sample j of prompt i: a hash of (seed, the prompt's tokens, the number of
    earlier identical prompts in the call, j). Repeated prompts still get distinct samples."""
    seen: Counter[tuple[int, ...]] = Counter()
    out = []
    for ids in prompt_ids:
        key = tuple(ids)
        base = hashlib.sha256(json.dumps([seed, seen[key], key]).encode()).digest()
        seen[key] += 1
        out.append([
            int.from_bytes(hashlib.sha256(base + j.to_bytes(4, "big")).digest()[:8], "big") >> 1
            for j in range(n)
        ])
    return out


def server_seeds(seed: int, prompts: Sequence[str], n: int) -> list[list[int]]:
    """:func:`row_seeds` for text prompts sent to a server (their UTF-8 bytes stand in
    for tokens), cut to 31 bits: servers keep seeds as (u)int32, and llama.cpp reads
    0xFFFFFFFF as "random"."""
    rows = row_seeds(seed, [p.encode() for p in prompts], n)
    return [[s & 0x7FFFFFFF for s in row] for row in rows]
