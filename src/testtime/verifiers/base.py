"""Verifier interface: score solutions step by step (a PRM) or as a whole (an ORM).

Every verifier returns per-step scores in [0, 1] (an ORM returns one score,
for the whole solution) and the tokens it processed, so scaling strategies can
account verifier compute separately from policy compute.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from testtime.registry import Registry
from testtime.tasks.base import Problem, Task

AGGREGATIONS = ("last", "min", "prod", "mean")


@dataclass
class Scores:
    """``steps[i]`` are the step scores of solution i; ``tokens`` read to get them, of
    which ``cached_tokens`` came from the verifier's prefix cache (not recomputed)."""

    steps: list[list[float]]
    tokens: int = 0
    calls: int = 0
    cached_tokens: int = 0


def aggregate(step_scores: Sequence[float], how: str = "last") -> float:
    """Reduce step scores to one solution score (Snell et al. found "last" best)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; valid: {', '.join(AGGREGATIONS)}")
    if not step_scores:
        return 0.0
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    if how == "prod":
        return float(math.prod(step_scores))
    return float(sum(step_scores) / len(step_scores))


class Verifier(ABC):
    name: str = "verifier"
    process: bool = True  # step-level scores (PRM) vs one outcome score (ORM)
    reads_labels: bool = False  # scores from gold labels (the oracle): an upper bound, not label-free
    # Scores depend on which solutions are scored together (a pairwise judge): a pool
    # cannot be scored once and subsampled; each candidate set is scored on its own.
    relative: bool = False

    @property
    def num_parameters(self) -> int | None:
        return None

    @abstractmethod
    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        """Score complete or partial solutions (text after ``problem.prompt``)."""


VERIFIERS: Registry[Verifier] = Registry("verifier")


def get_verifier(name: str, task: Task | None = None, **options) -> Verifier:
    """Build a registered verifier by name (``oracle`` needs the task)."""
    import testtime.verifiers  # noqa: F401  (registers the built-in verifiers)

    return VERIFIERS.create(name, task=task, **options)
