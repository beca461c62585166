"""Parallel scaling as "a selector over a candidate pool".

A :class:`PoolStrategy` samples ``n`` independent completions of the prompt
(optionally scores them with a verifier) and then *selects* an answer from the
pool. Sampling and selection are separate so the scaling harness can sample one
pool of max(N) per problem and evaluate every smaller budget by subsampling it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from testtime.backends.base import Generator, SamplingParams, Usage
from testtime.scale.base import Candidate, Compute, ProblemResult, Strategy
from testtime.scale.common import (
    check_aggregation,
    check_positive,
    derive_seed,
    score_candidates,
    split_usage,
    to_candidate,
)
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier

Selection = tuple[str | None, dict[str, Any]]


class PoolStrategy(Strategy):
    """Sample a pool of ``n`` candidates at ``temperature``, then :meth:`select`.

    ``needs_verifier``: the selector reads verifier scores (the pool is scored). ``seed`` makes the pool reproducible on backends that
    honour seeds (a problem's pool depends on the seed and its prompt, not on the
    problems batched with it).
    """

    poolable = True

    def __init__(
        self,
        n: int = 8,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = 0,
        aggregation: str = "last",
    ) -> None:
        self.n = check_positive("n", n)
        # SamplingParams validates temperature/top_p/max_tokens now, before any generation.
        SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.aggregation = check_aggregation(aggregation)

    @property
    def wants_logprobs(self) -> bool:
        return "logprobs" in self.requires

    def pool_key(self) -> tuple[Any, ...]:
        """Strategies with equal keys can share one sampled pool."""
        return (self.temperature, self.top_p, self.max_tokens, self.seed)

    def sample_pool(
        self,
        problem: Problem,
        generator: Generator,
        task: Task,
        n: int,
        compute: Compute,
        *,
        logprobs: bool | None = None,
    ) -> list[Candidate]:
        """``n`` independent samples for ``problem`` (usage charged to ``compute``)."""
        [(pool, used)] = self.sample_pools([problem], generator, task, n, logprobs=logprobs)
        compute.add_usage(used, generator)
        return pool

    def sample_pools(
        self,
        problems: Sequence[Problem],
        generator: Generator,
        task: Task,
        n: int,
        *,
        logprobs: bool | None = None,
    ) -> list[tuple[list[Candidate], Usage]]:
        """Pools of ``n`` samples for several problems in ONE batched call (much faster
        on a local model), each with its share of the call's usage (see split_usage)."""
        # One seed for the call, not derived from which problems share it: seeded backends
        # sample each prompt from (seed, prompt) alone (the lean sampler per row, HTTP
        # backends per request), so a problem's pool does not depend on its batch-mates.
        seed = derive_seed(self.seed, "pool") if generator.capabilities.seed else None
        params = SamplingParams(
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=seed,
            logprobs=self.wants_logprobs if logprobs is None else logprobs,
        )
        prompts = [p.prompt for p in problems]
        result = generator.generate(prompts, params)
        usages = split_usage(result.usage, prompts, result.completions)
        return [
            ([to_candidate(c, task) for c in completions], used)
            for completions, used in zip(result.completions, usages, strict=True)
        ]

    @abstractmethod
    def select(self, pool: Sequence[Candidate], problem: Problem, task: Task) -> Selection:
        """The answer chosen from ``pool`` and details for the record."""

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        compute = Compute()
        pool = self.sample_pool(problem, generator, task, self.n, compute)
        if self.needs_verifier:
            assert verifier is not None  # check() refused a missing verifier
            score_candidates(pool, problem, verifier, compute, self.aggregation)
        answer, meta = self.select(pool, problem, task)
        return ProblemResult(problem.id, answer, pool, compute, meta=meta)
