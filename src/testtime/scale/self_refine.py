"""Self-refinement / turn scaling (Madaan et al., 2023; Snell et al., 2024 §6;
spec §6).

Up to ``turns`` attempts per chain, each conditioned on the previous attempt:
after a complete attempt ``... answer: Y`` the revise cue is appended —
``revise step j`` (1-based) naming the first step the verifier scores below
``threshold``, or a bare ``revise`` without a process verifier — and the model
writes a new solution. A chain stops early once the verifier accepts its
attempt. With ``budget`` set, every attempt is budget-forced (see
:mod:`testtime.scale.budget_forcing`); ``n`` chains run in parallel, which makes
this class the engine of 3-D scaling too.

Feedback is label-free with a learned verifier (``--verifier prm``); with the
oracle it is gold feedback (the first wrong step, from the task's step checker),
and the result rows say ``labels: oracle-feedback`` — an upper bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult
from testtime.scale.budget_forcing import (
    Continuer,
    SequentialStrategy,
    attempt_candidate,
    end_line,
    think,
)
from testtime.scale.common import (
    best_scored,
    candidate_score,
    check_aggregation,
    check_positive,
    score_candidates,
    vote,
)
from testtime.tasks.base import REVISE_PREFIX, STEP_DELIMITER, Problem, Task
from testtime.tasks.labels import labels_tag
from testtime.verifiers.base import Verifier

SELECTIONS = ("vote", "weighted", "best")


def revise_cue(candidate: Candidate, verifier: Verifier | None, threshold: float) -> str | None:
    """The cue that asks for a revision of a (scored) attempt, None when the verifier accepts it."""
    if verifier is None or candidate.step_scores is None:
        return REVISE_PREFIX + STEP_DELIMITER
    if verifier.process:
        for j, s in enumerate(candidate.step_scores):
            if s < threshold:
                return f"{REVISE_PREFIX} step {j + 1}{STEP_DELIMITER}"
    if (candidate.score or 0.0) < threshold:
        return REVISE_PREFIX + STEP_DELIMITER  # wrong, but no step to point at
    return None


@STRATEGIES.register("self-refine")
class SelfRefine(SequentialStrategy):
    name = "self-refine"
    budget_param = "turns"

    def __init__(
        self,
        turns: int = 3,
        n: int = 1,
        budget: int | None = None,
        waits: int | None = 0,
        max_tokens: int = 256,
        threshold: float = 0.5,
        select: str = "vote",
        temperature: float = 0.8,
        answer_tokens: int = 16,
        aggregation: str = "last",
        seed: int | None = 0,
    ) -> None:
        """``turns`` attempts per chain, ``n`` parallel chains; ``budget`` (thinking
        tokens) and ``waits`` budget-force every attempt when set. ``select``: majority
        ``vote`` or verifier-``weighted`` vote over the chains' final answers, or the
        ``best``-scored attempt of all."""
        super().__init__(temperature, answer_tokens, seed)
        self.turns = check_positive("turns", turns)
        self.n = check_positive("n", n)
        self.budget = None if budget is None else check_positive("budget", budget)
        if waits is not None and waits < 0:
            raise ValueError(f"waits must be >= 0 (or None for no limit), got {waits}")
        self.waits = waits
        self.max_tokens = check_positive("max_tokens", max_tokens)
        self.threshold = threshold
        if select not in SELECTIONS:
            raise ValueError(f"unknown selection {select!r}; valid: {', '.join(SELECTIONS)}")
        self.select = select
        self.aggregation = check_aggregation(aggregation)

    def reads_verifier(self, verifier: Verifier | None) -> bool:
        return verifier is not None  # its feedback (and stopping) reads the verifier

    def labels(self, verifier: Verifier | None) -> str:
        if verifier is None or not verifier.reads_labels:
            return "none"
        return labels_tag(["oracle-feedback"] + (["oracle-verifier"] if self.select != "vote" else []))

    def check(self, task: Task, generator: Generator, verifier: Verifier | None) -> None:
        super().check(task, generator, verifier)
        if self.select != "vote" and verifier is None:
            raise ValueError(f"strategy {self.name!r} with select={self.select!r} needs a verifier")

    def attempts(self, cont: Continuer, task: Task) -> Callable[[Sequence[str]], list[Candidate]]:
        """One attempt continuing each prefix: plain sampling, or budget-forced."""

        def run(prefixes: Sequence[str]) -> list[Candidate]:
            if self.budget is None:
                outs = cont(prefixes, [self.max_tokens] * len(prefixes), ())
                return [Candidate(t, task.extract_answer(t), k) for t, k, _ in outs]
            found = think(
                cont,
                prefixes,
                budget=self.budget,
                waits=self.waits,
                answer_tokens=self.answer_tokens,
            )
            return [attempt_candidate(a, task) for a in found]

        return run

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        compute = Compute()
        attempt = self.attempts(self.continuer(generator, problem, compute), task)
        chains: list[list[Candidate]] = [[] for _ in range(self.n)]
        prefixes = [""] * self.n
        live = list(range(self.n))
        for turn in range(self.turns):
            found = attempt([prefixes[i] for i in live])
            if verifier is not None:
                score_candidates(found, problem, verifier, compute, self.aggregation)
            next_live = []
            for i, cand in zip(live, found, strict=True):
                cand.meta.update(chain=i, turn=turn)
                chains[i].append(cand)
                cue = revise_cue(cand, verifier, self.threshold)
                cand.meta["feedback"] = cue
                if cue is not None:
                    # Conditioned on the previous attempt only, as the model was trained.
                    prefixes[i] = end_line(cand.text) + cue
                    next_live.append(i)
            live = next_live
            if not live:
                break
        finals = [chain[-1] for chain in chains]
        everything = [c for chain in chains for c in chain]
        meta: dict = {"turns_used": [len(chain) for chain in chains]}
        if self.select == "best":
            best = best_scored(everything, self.aggregation)
            answer = None if best is None else best.answer
        else:
            weights = None
            if self.select == "weighted":
                weights = [candidate_score(c, self.aggregation) for c in finals]
            answer, meta["votes"] = vote(finals, problem, task, weights)
        return ProblemResult(problem.id, answer, everything, compute, meta=meta)


@STRATEGIES.register("scaling-3d")
class Scaling3D(SelfRefine):
    """3-D scaling (spec §6): context (thinking budget per attempt) × batch (``n``
    parallel chains, aggregated by vote) × turns (revision rounds). Each axis
    saturates alone; the harness sweeps ``n`` and the other two are options."""

    name = "scaling-3d"
    budget_param = "n"

    def __init__(
        self,
        n: int = 4,
        turns: int = 2,
        budget: int | None = 128,
        waits: int | None = 1,
        max_tokens: int = 256,
        threshold: float = 0.5,
        select: str = "vote",
        temperature: float = 0.8,
        answer_tokens: int = 16,
        aggregation: str = "last",
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            turns,
            n,
            budget,
            waits,
            max_tokens,
            threshold,
            select,
            temperature,
            answer_tokens,
            aggregation,
            seed,
        )
