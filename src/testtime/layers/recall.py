"""Multi-query associative recall (MQAR, Arora et al. 2023, "Zoology"): the long-context
in-context key–value task where a layer's test-time memory matters.

A sequence is ``<bos> k1 v1 k2 v2 ... kn vn [filler x gap] <sep> q1 a1 q2 a2 ...``: n
distinct keys each bound to a random value, optional filler tokens that push the
questions further away, then queries (keys from the list, in random order) each followed
by its value. Only the answer positions are scored (the target of the token ``q_i`` is
``a_i``; every other target is -100, ignored). Same seed, same batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD, BOS, SEP = 0, 1, 2
IGNORE = -100


@dataclass(frozen=True)
class RecallSpec:
    pairs: int = 16  # key–value pairs in the context
    queries: int = 8  # questions after the context (<= pairs)
    gap: int = 0  # filler tokens between the pairs and the questions
    n_keys: int = 64
    n_values: int = 64
    n_filler: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.queries <= self.pairs <= self.n_keys:
            raise ValueError(
                f"need 1 <= queries ({self.queries}) <= pairs ({self.pairs}) <= n_keys ({self.n_keys})"
            )
        if self.gap < 0 or self.n_values < 1 or self.n_filler < 1:
            raise ValueError("gap must be >= 0, n_values and n_filler >= 1")

    @property
    def vocab_size(self) -> int:
        return 3 + self.n_keys + self.n_values + self.n_filler

    @property
    def length(self) -> int:
        return 1 + 2 * self.pairs + self.gap + 1 + 2 * self.queries


def recall_batch(spec: RecallSpec, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, targets), both (batch, spec.length) int64."""
    g = torch.Generator().manual_seed(seed)
    key0, val0, fill0 = 3, 3 + spec.n_keys, 3 + spec.n_keys + spec.n_values
    keys = torch.argsort(torch.rand(batch, spec.n_keys, generator=g), dim=1)[:, : spec.pairs] + key0
    values = torch.randint(val0, val0 + spec.n_values, (batch, spec.pairs), generator=g)
    order = torch.argsort(torch.rand(batch, spec.pairs, generator=g), dim=1)[:, : spec.queries]
    q_keys, q_vals = keys.gather(1, order), values.gather(1, order)
    filler = torch.randint(fill0, fill0 + spec.n_filler, (batch, spec.gap), generator=g)
    col = torch.full((batch, 1), 0, dtype=torch.long)
    tokens = torch.cat([
        col + BOS, torch.stack([keys, values], 2).flatten(1), filler, col + SEP,
        torch.stack([q_keys, q_vals], 2).flatten(1),
    ], dim=1)
    targets = torch.full_like(tokens, IGNORE)
    first = 1 + 2 * spec.pairs + spec.gap + 1  # position of q1
    targets[:, first : first + 2 * spec.queries : 2] = q_vals
    return tokens, targets


def recall_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of scored positions whose argmax is the value."""
    mask = targets != IGNORE
    return (logits.argmax(-1)[mask] == targets[mask]).float().mean().item()
