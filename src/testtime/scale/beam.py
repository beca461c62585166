"""PRM-guided step-level beam search (Snell et al., 2024, "Scaling LLM test-time
compute optimally...", §5; spec §2).

N beams, beam width M: sample N first steps, score every prefix with the PRM,
keep the top N/M and expand each into M next steps; optionally score a prefix by
rolling k further steps at T = 0 (lookahead) while committing only its first
step. The last iteration generates to the end. The answer is the complete beam
with the highest aggregated score, or the PRM-weighted vote over complete beams.
"""

from __future__ import annotations

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult
from testtime.scale.common import check_positive
from testtime.scale.stepwise import (
    StepExpander,
    StepSearchStrategy,
    choose_answer,
    is_complete,
)
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


def tree_search(
    expander: StepExpander,
    *,
    groups: int,
    keep: int,
    width: int,
    lookahead: int,
    max_steps: int,
    temperature: float,
) -> tuple[list[Candidate], list[list[list[float]]]]:
    """Beam search run independently in ``groups`` subtrees of ``keep × width`` beams.

    Each iteration expands every kept prefix of every subtree into ``width``
    children (the roots into ``keep × width``), scores them, moves complete ones
    aside and keeps each subtree's ``keep`` best incomplete prefixes. A subtree
    stops once it has ``keep × width`` complete paths. Beam search is one group;
    DVTS is N/M groups keeping 1. Returns the complete paths and, per iteration,
    the scores of the prefixes each subtree kept.
    """
    slots = keep * width
    active: list[list[Candidate]] = [
        [Candidate("", None, 0, meta={"depth": 0})] for _ in range(groups)
    ]
    finished: list[list[Candidate]] = [[] for _ in range(groups)]
    kept_scores: list[list[list[float]]] = []
    for it in range(max_steps):
        live = [g for g in range(groups) if active[g]]
        if not live:
            break
        parents = [p for g in live for p in active[g]]
        owner = [g for g in live for _ in active[g]]
        children = expander.extend(
            parents, slots if it == 0 else width, temperature, to_end=it == max_steps - 1
        )
        flat = [c for kids in children for c in kids]
        expander.lookahead_score(flat, lookahead)
        by_group: dict[int, list[Candidate]] = {g: [] for g in live}
        for g, kids in zip(owner, children, strict=True):
            by_group[g].extend(kids)
        row = []
        for g in live:
            open_paths = []
            for child in by_group[g]:
                (finished[g] if is_complete(child) else open_paths).append(child)
            open_paths.sort(key=lambda c: c.score, reverse=True)  # stable: first sampled wins ties
            active[g] = [] if len(finished[g]) >= slots else open_paths[:keep]
            row.append([c.score for c in active[g]])
        kept_scores.append(row)
    return [c for g in finished for c in g], kept_scores


@STRATEGIES.register("beam")
class BeamSearch(StepSearchStrategy):
    name = "beam"

    def __init__(
        self,
        n: int = 16,
        width: int = 4,
        lookahead: int = 0,
        max_steps: int = 40,
        temperature: float = 0.8,
        step_tokens: int = 64,
        max_tokens: int = 256,
        aggregation: str = "last",
        select: str = "score",
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            n, temperature, step_tokens, max_tokens, max_steps, aggregation, select, seed
        )
        self.width = check_positive("width", width)
        if n % width:
            raise ValueError(f"beam width {width} must divide n = {n}")
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        self.lookahead = lookahead

    def groups_and_keep(self) -> tuple[int, int]:
        """(independent subtrees, prefixes kept per subtree): one tree keeping N/M."""
        return 1, self.n // self.width

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        compute = Compute()
        groups, keep = self.groups_and_keep()
        finished, kept_scores = tree_search(
            self.expander(problem, task, generator, verifier, compute),
            groups=groups,
            keep=keep,
            width=self.width,
            lookahead=self.lookahead,
            max_steps=self.max_steps,
            temperature=self.temperature,
        )
        answer, meta = choose_answer(finished, problem, task, self.select, self.aggregation)
        meta["kept_scores"] = kept_scores
        return ProblemResult(problem.id, answer, finished, compute, meta=meta)
