"""Dynamic Experts Search (Han et al. 2025, "Dynamic Experts Search: Enhancing Reasoning
in Mixture-of-Experts LLMs at Test Time"): the number of activated experts of an MoE
model becomes a search dimension.

Each path draws an expert count from ``[k_min, k_max]`` (the counts split as evenly as
the budget allows, :func:`~testtime.scale.common.apportion`, extra paths to the counts
nearest the model's default) and keeps it to its end
(expert configuration inheritance): in ``mode="sample"`` every candidate is one
sample at its count; in ``mode="beam"`` (the paper's step-level search) N first steps
are split over the counts, the PRM keeps the best N/M prefixes over all counts and
each child inherits its parent's count. The answer: ``select="majority"`` (vote),
``"score"`` (the best PRM-scored candidate) or ``"weighted"`` (PRM-weighted vote).

Compute: every call runs on a view of the model with its count
(:func:`~testtime.backends.experts.with_experts`), whose parameter count is the one
active at that count, so FLOPs are the expert FLOPs really spent. A dense model or
a count the model cannot honour is refused in :meth:`check`, before any generation.
Deviation: the paper tunes the count range per model; the default here is
``[max(1, d - 1), min(2d, max)]`` around the model's default ``d``.
"""

from __future__ import annotations

from collections.abc import Sequence

from testtime.backends.base import Generator, SamplingParams
from testtime.backends.experts import experts_info, with_experts
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult, Strategy
from testtime.scale.beam import tree_search
from testtime.scale.common import (
    apportion,
    best_scored,
    candidate_score,
    check_aggregation,
    check_positive,
    derive_seed,
    score_candidates,
    to_candidate,
    vote,
)
from testtime.scale.stepwise import StepExpander
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier

MODES = ("sample", "beam")
SELECTS = ("majority", "score", "weighted")


class _ExpertsExpander:
    """The step expander of :func:`tree_search` over per-count expanders: the root's
    children are split over the counts, every later child inherits its parent's count."""

    def __init__(self, expanders: dict[int, StepExpander], counts: list[int]) -> None:
        self.expanders, self.counts = expanders, counts

    def extend(self, paths: Sequence[Candidate], n: int, temperature: float, *, to_end: bool = False):
        out: list[list[Candidate]] = [[] for _ in paths]
        roots = [i for i, p in enumerate(paths) if "experts" not in p.meta]
        for i in roots:
            for k, share in zip(self.counts, apportion(n, [1.0] * len(self.counts)), strict=True):
                if share:
                    out[i] += self._extend(k, [paths[i]], share, temperature, to_end)[0]
        for k in self.counts:
            idx = [i for i, p in enumerate(paths) if p.meta.get("experts") == k]
            if idx:
                for i, kids in zip(idx, self._extend(k, [paths[i] for i in idx], n, temperature, to_end), strict=True):
                    out[i] = kids
        return out

    def _extend(self, k: int, paths: list[Candidate], n: int, temperature: float, to_end: bool):
        children = self.expanders[k].extend(paths, n, temperature, to_end=to_end)
        for kids in children:
            for child in kids:
                child.meta["experts"] = k
        return children

    def lookahead_score(self, paths: Sequence[Candidate], lookahead: int) -> None:
        self.expanders[self.counts[0]].score(paths)  # the PRM's scores need no expert count


@STRATEGIES.register("dynamic-experts")
class DynamicExperts(Strategy):
    name = "dynamic-experts"
    needs_moe = True  # runs on in-process mixture-of-experts models only

    def __init__(
        self,
        n: int = 8,
        k_min: int | None = None,
        k_max: int | None = None,
        mode: str = "sample",
        select: str = "majority",
        width: int = 4,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int = 256,
        step_tokens: int = 64,
        max_steps: int = 40,
        aggregation: str = "last",
        seed: int | None = 0,
    ) -> None:
        self.n = check_positive("n", n)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if select not in SELECTS:
            raise ValueError(f"unknown select {select!r}; valid: {', '.join(SELECTS)}")
        for key, value in (("k_min", k_min), ("k_max", k_max)):
            if value is not None:
                check_positive(key, value)
        if k_min is not None and k_max is not None and k_min > k_max:
            raise ValueError(f"k_min {k_min} is above k_max {k_max}")
        self.width = check_positive("width", width)
        if mode == "beam" and n % width:
            raise ValueError(f"beam width {width} must divide n = {n}")
        SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
        self.k_min, self.k_max, self.mode, self.select = k_min, k_max, mode, select
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.step_tokens = check_positive("step_tokens", step_tokens)
        self.max_steps = check_positive("max_steps", max_steps)
        self.aggregation = check_aggregation(aggregation)
        self.seed = seed
        self.needs_verifier = mode == "beam" or select != "majority"
        self.needs_step_verifier = mode == "beam"
        self.requires = ("continuation",) if mode == "beam" else ()

    def counts(self, generator: Generator) -> list[int]:
        """The expert counts searched over (a dense model or a bad count: an error now)."""
        info = experts_info(generator)
        d = info.default_k
        lo = info.check(self.k_min) if self.k_min is not None else max(1, d - 1)
        hi = info.check(self.k_max) if self.k_max is not None else min(2 * d, info.max_k)
        if lo > hi:
            raise ValueError(f"k_min {lo} is above k_max {hi} for {info.architecture}")
        return list(range(lo, hi + 1))

    def check(self, task: Task, generator: Generator, verifier: Verifier | None) -> None:
        super().check(task, generator, verifier)
        self.counts(generator)

    def solve_one(self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None) -> ProblemResult:
        compute = Compute()
        d = experts_info(generator).default_k
        # Counts nearest the model's default first: a budget that does not split evenly
        # gives its extra paths to them (N = 1 is plain sampling at the default count).
        counts = sorted(self.counts(generator), key=lambda k: (abs(k - d), k))
        views = {k: with_experts(generator, k) for k in counts}
        if self.mode == "beam":
            assert verifier is not None  # check() refused a missing verifier
            expanders = {
                k: StepExpander(problem, task, views[k], verifier, compute, step_tokens=self.step_tokens,
                                max_tokens=self.max_tokens, aggregation=self.aggregation,
                                seed=derive_seed(self.seed, "experts", k))
                for k in counts
            }
            pool, _ = tree_search(_ExpertsExpander(expanders, counts), groups=1, keep=self.n // self.width,
                                  width=self.width, lookahead=0, max_steps=self.max_steps,
                                  temperature=self.temperature)
        else:
            pool = []
            for k, share in zip(counts, apportion(self.n, [1.0] * len(counts)), strict=True):
                if share:
                    pool += self._sample(problem, views[k], task, share, k, compute)
            if verifier is not None and self.needs_verifier:
                score_candidates(pool, problem, verifier, compute, self.aggregation)
        answer, meta = self._choose(pool, problem, task)
        meta["experts"] = {str(k): sum(c.meta.get("experts") == k for c in pool) for k in sorted(counts)}
        meta["active_parameters"] = {str(k): views[k].num_parameters for k in sorted(counts)}
        return ProblemResult(problem.id, answer, pool, compute, meta=meta)

    def _sample(self, problem: Problem, view: Generator, task: Task, n: int, k: int, compute: Compute) -> list[Candidate]:
        seed = derive_seed(self.seed, "experts", k) if view.capabilities.seed else None
        params = SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_tokens, seed=seed)
        result = view.generate([problem.prompt], params)
        compute.add_usage(result.usage, view)
        pool = [to_candidate(c, task) for c in result.completions[0]]
        for cand in pool:
            cand.meta["experts"] = k
        return pool

    def _choose(self, pool: list[Candidate], problem: Problem, task: Task) -> tuple[str | None, dict]:
        if self.select == "majority":
            answer, tally = vote(pool, problem, task)
            return answer, {"votes": tally}
        if self.select == "weighted":
            answer, tally = vote(pool, problem, task, [candidate_score(c, self.aggregation) for c in pool])
            return answer, {"weighted_votes": tally}
        best = best_scored(pool, self.aggregation)
        return (None, {}) if best is None else (best.answer, {"score": candidate_score(best, self.aggregation)})
