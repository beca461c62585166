"""Automated strategy search under a compute budget (AgentTTS-style, spec §11).

Propose configurations, evaluate each on the calibration split, refine around the
best found so far (its neighbours are evaluated next), and stop once the search
has spent its budget. The search is generic over the configuration type: the
caller supplies ``evaluate`` (score, cost) and ``neighbours``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


@dataclass
class SearchStep(Generic[C]):
    config: C
    score: float
    cost: float
    spent: float  # search compute spent after this evaluation
    best_score: float  # best score found so far (never decreases along the trace)


@dataclass
class SearchResult(Generic[C]):
    best: C
    best_score: float
    spent: float
    trace: list[SearchStep[C]] = field(default_factory=list)


def agent_search(
    start: Sequence[C],
    evaluate: Callable[[C], tuple[float, float]],
    neighbours: Callable[[C], Iterable[C]],
    budget: float,
) -> SearchResult[C]:
    """Best-first neighbourhood search: evaluate the ``start`` proposals, and every
    time a configuration beats the best so far put its unseen neighbours at the
    front of the queue. Stops when the queue is empty or ``spent >= budget``
    (checked before each evaluation, so at most one evaluation runs past it)."""
    if budget <= 0:
        raise ValueError(f"search budget must be positive, got {budget}")
    if not start:
        raise ValueError("agent search needs at least one starting configuration")
    queue = list(start)
    seen: set[C] = set()
    trace: list[SearchStep[C]] = []
    best: C | None = None
    best_score = float("-inf")
    spent = 0.0
    while queue and spent < budget:
        config = queue.pop(0)
        if config in seen:
            continue
        seen.add(config)
        score, cost = evaluate(config)
        spent += cost
        if best is None or score > best_score:
            best, best_score = config, score
            # Refine around the new best before trying the remaining proposals.
            queue = [c for c in neighbours(config) if c not in seen] + queue
        trace.append(SearchStep(config, score, cost, spent, best_score))
    assert best is not None  # the first evaluation always runs (budget > 0, start non-empty)
    return SearchResult(best, best_score, spent, trace)
