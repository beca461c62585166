"""The configuration space compute-optimal allocation chooses from (Snell et al.
2024): a pool method with n samples, beam search with n beams, width M ∈ {4, √N}
and lookahead k ∈ {0, 1, 3}, or sequential revisions — n attempts as ``width``
parallel chains of n / width revisions each (the paper's sequential/parallel
ratio). :func:`neighbours` are the moves of the AgentTTS-style search.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from testtime.scale.base import Compute, Strategy
from testtime.scale.common import check_positive
from testtime.scale.plan import build_strategy

POOL_METHODS = ("best-of-n", "weighted-majority", "majority")
SEARCH_METHODS = ("beam", "revise")  # run per problem (not derived from a pool)
METHODS = (*POOL_METHODS, *SEARCH_METHODS)
LOOKAHEADS = (0, 1, 3)


@dataclass(frozen=True)
class Config:
    """One strategy configuration (``width``: beam width, or parallel revision chains)."""

    method: str
    n: int
    width: int = 0
    lookahead: int = 0  # beam only

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown configuration method {self.method!r}; valid: {', '.join(METHODS)}")
        check_positive("n", self.n)
        if self.method in SEARCH_METHODS:
            check_positive(f"{self.method} width", self.width)
            if self.n % self.width:
                raise ValueError(f"{self.method} width {self.width} must divide n = {self.n}")
        elif self.width:
            raise ValueError(f"{self.method!r} takes no width")
        if self.lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {self.lookahead}")
        if self.lookahead and self.method != "beam":
            raise ValueError(f"{self.method!r} takes no lookahead")

    @property
    def name(self) -> str:
        if self.method == "beam":
            return f"beam/n={self.n},w={self.width},la={self.lookahead}"
        if self.method == "revise":
            return f"revise/n={self.n},chains={self.width}"
        return f"{self.method}/n={self.n}"

    @property
    def uses_verifier(self) -> bool:
        return self.method != "majority"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        unknown = set(d) - {"method", "n", "width", "lookahead"}
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def build(self, options: dict[str, Any]) -> Strategy:
        if self.method == "beam":
            return build_strategy("beam", {**options, "width": self.width, "lookahead": self.lookahead}, self.n)
        if self.method == "revise":  # verifier-weighted vote over the chains' last attempts
            return build_strategy(
                "self-refine", {**options, "n": self.width, "select": "weighted"}, self.n // self.width
            )
        return build_strategy(self.method, options, self.n)


def tokens(compute: Compute) -> int:
    """The budgeted compute: generated + verifier tokens."""
    return compute.generated_tokens + compute.verifier_tokens


def beam_widths(n: int) -> list[int]:
    """Snell et al.'s widths M ∈ {4, √N} that divide N."""
    root = math.isqrt(n)
    return sorted({m for m in (4, root) if m >= 1 and n % m == 0 and (m != root or root * root == n)})


def chain_counts(n: int) -> list[int]:
    """Parallel chains for n revision attempts: all sequential (1), √N-ish and 4, dividing n."""
    return sorted({c for c in (1, 4, math.isqrt(n)) if 1 <= c <= n and n % c == 0})


def candidate_configs(ns: Sequence[int], *, beam: bool, revise: bool = False) -> list[Config]:
    ns = sorted(set(ns))
    configs = [Config(m, n) for n in ns for m in POOL_METHODS]
    if beam:
        configs += [Config("beam", n, w, la) for n in ns for w in beam_widths(n) for la in LOOKAHEADS]
    if revise:
        configs += [Config("revise", n, c) for n in ns if n > 1 for c in chain_counts(n)]
    return configs


def neighbours(config: Config) -> Iterator[Config]:
    """Configurations one move away: n doubled/halved, another aggregation, another
    beam width or chain count, another lookahead (the moves of the config search)."""
    ns = [config.n * 2] + ([config.n // 2] if config.n > 1 else [])
    if config.method == "beam":
        for n in [*ns, config.n]:
            yield from (Config("beam", n, w, config.lookahead) for w in beam_widths(n))
        yield from (Config("beam", config.n, config.width, la) for la in LOOKAHEADS if la != config.lookahead)
        yield Config("weighted-majority", config.n)
    elif config.method == "revise":
        for n in [*ns, config.n]:
            yield from (Config("revise", n, c) for c in chain_counts(n) if n > 1)
        yield Config("weighted-majority", config.n)
    else:
        yield from (Config(config.method, n) for n in ns)
        yield from (Config(m, config.n) for m in POOL_METHODS if m != config.method)
        yield from (Config("beam", config.n, w, 0) for w in beam_widths(config.n))
