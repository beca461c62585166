"""The scaling-strategy interface, its plain result types and compute accounting.

A :class:`Strategy` takes problems, a :class:`~testtime.backends.base.Generator`,
optionally a verifier, and returns one :class:`ProblemResult` per problem: the
chosen answer, every candidate with its scores, and the compute spent.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from testtime.backends.base import Generator, Usage
from testtime.registry import Registry
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import labels_tag
from testtime.verifiers.base import Scores, Verifier


@dataclass
class Compute:
    """Everything a result cost, in one ledger for every strategy.

    Tokens *charged* are what an API would bill: every call's prompt (its full
    prefix, however often it was sent before) plus the generated tokens. Tokens
    *computed* are what the model really prefilled and decoded: the charged ones
    less ``cached_tokens``, prompt tokens a backend served from a prefix cache.
    A backend reports ``Usage.prompt_tokens`` as the prompt tokens it processed
    and ``Usage.cached_tokens`` as those it reused (0 without a cache), so here
    ``prompt_tokens`` = processed + cached (charged). A verifier's tokens are all it
    read, ``verifier_cached_tokens`` of them served from its own prefix cache. FLOPs
    are 2 × parameters × computed tokens, for the policy and the verifier separately
    (None when a parameter count is unknown).
    """

    prompt_tokens: int = 0
    generated_tokens: int = 0
    verifier_tokens: int = 0
    model_calls: float = 0  # fractional: a batched call is shared by its prompts
    verifier_calls: int = 0
    policy_flops: float | None = 0.0
    verifier_flops: float | None = 0.0
    wall_s: float = 0.0
    cached_tokens: int = 0
    verifier_cached_tokens: int = 0

    def add_usage(self, usage: Usage, generator: Generator) -> None:
        cached = int(getattr(usage, "cached_tokens", 0) or 0)
        self.prompt_tokens += usage.prompt_tokens + cached  # charged: the whole prompt
        self.cached_tokens += cached
        self.generated_tokens += usage.completion_tokens
        self.model_calls += usage.calls
        params = generator.num_parameters
        if params is None or self.policy_flops is None:
            self.policy_flops = None
        else:
            self.policy_flops += 2.0 * params * usage.total_tokens  # processed = computed

    def add_scores(self, scores: Scores, verifier: Verifier) -> None:
        cached = int(getattr(scores, "cached_tokens", 0) or 0)
        self.verifier_tokens += scores.tokens
        self.verifier_cached_tokens += cached
        self.verifier_calls += scores.calls
        params = verifier.num_parameters
        if params is None or self.verifier_flops is None:
            self.verifier_flops = None
        else:
            self.verifier_flops += 2.0 * params * (scores.tokens - cached)

    @property
    def charged_tokens(self) -> int:
        """Policy and verifier tokens as billed: every call's whole prompt included."""
        return self.prompt_tokens + self.generated_tokens + self.verifier_tokens

    @property
    def computed_tokens(self) -> int:
        """Policy and verifier tokens really processed (prefix-cache hits excluded)."""
        return self.charged_tokens - self.cached_tokens - self.verifier_cached_tokens

    @property
    def flops(self) -> float | None:
        if self.policy_flops is None or self.verifier_flops is None:
            return None
        return self.policy_flops + self.verifier_flops

    def __add__(self, other: Compute) -> Compute:
        def both(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return Compute(
            self.prompt_tokens + other.prompt_tokens,
            self.generated_tokens + other.generated_tokens,
            self.verifier_tokens + other.verifier_tokens,
            self.model_calls + other.model_calls,
            self.verifier_calls + other.verifier_calls,
            both(self.policy_flops, other.policy_flops),
            both(self.verifier_flops, other.verifier_flops),
            self.wall_s + other.wall_s,
            self.cached_tokens + other.cached_tokens,
            self.verifier_cached_tokens + other.verifier_cached_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            # a sum of shares of batched calls: 1/3 + 1/3 + 1/3 is 1, not 0.999...
            **asdict(self), "model_calls": round(self.model_calls, 9), "flops": self.flops,
            "charged_tokens": self.charged_tokens, "computed_tokens": self.computed_tokens,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Compute:
        """Inverse of :meth:`to_dict` (derived fields dropped; older records lack cached_tokens)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Candidate:
    """One solution a strategy produced (the text after the prompt)."""

    text: str
    answer: str | None
    num_tokens: int
    finish_reason: str = "stop"
    mean_logprob: float | None = None
    step_scores: list[float] | None = None  # verifier step scores, when scored
    score: float | None = None  # aggregated verifier score, when scored
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProblemResult:
    problem_id: str
    answer: str | None
    candidates: list[Candidate]
    compute: Compute
    correct: bool | None = None  # filled in by whoever holds the labels
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compute"] = self.compute.to_dict()
        return d


class Strategy(ABC):
    """A way to spend test-time compute on a problem.

    Subclasses set ``name``, declare the backend capabilities they need in
    ``requires`` and whether a verifier is mandatory, and implement :meth:`solve_one`
    (or :meth:`solve` when they batch across problems).
    """

    name: str = "strategy"
    requires: tuple[str, ...] = ()  # backend Capabilities fields
    needs_verifier: bool = False
    needs_step_verifier: bool = False  # step-wise search needs step delimiters + a PRM
    # The constructor keyword the scaling harness sets to each budget N (None: a
    # fixed-budget strategy such as greedy, reported at N = 1).
    budget_param: str | None = "n"
    # Numeric ProblemResult.meta keys the harness averages into each result row
    # (e.g. QAlign's acceptance rate).
    reported: tuple[str, ...] = ()
    # True for "sample a pool, then select" strategies (see scale.pool.PoolStrategy):
    # the harness samples one pool of max(N) and derives every budget by subsampling.
    poolable: bool = False

    def state_identity(self) -> str | None:
        """A digest of file-backed state the strategy loaded (e.g. a fitted policy), or
        None. The scaling harness adds it to its run-store keys, so results computed
        with a file that was since replaced are recomputed, never reused."""
        return None

    def reads_verifier(self, verifier: Verifier | None) -> bool:
        """Whether this strategy's choices read ``verifier``'s scores."""
        return verifier is not None and (self.needs_verifier or self.needs_step_verifier)

    def labels(self, verifier: Verifier | None) -> str:
        """The gold signals this strategy reads with ``verifier`` (see testtime.tasks.labels)."""
        oracle = self.reads_verifier(verifier) and getattr(verifier, "reads_labels", False)
        return labels_tag(["oracle-verifier"] if oracle else [])

    def check(self, task: Task, generator: Generator, verifier: Verifier | None) -> None:
        """Refuse up front — before any generation — what this strategy cannot honour."""
        generator.require(*self.requires, by=f"strategy {self.name!r}")
        if self.needs_verifier and verifier is None:
            raise ValueError(f"strategy {self.name!r} needs a verifier (e.g. --verifier prm)")
        if self.needs_step_verifier and not task.has_step_checker:
            raise ValueError(
                f"strategy {self.name!r} searches over steps; task {task.name!r} has no step checker"
            )
        if self.needs_step_verifier and verifier is not None and not verifier.process:
            raise ValueError(
                f"strategy {self.name!r} scores partial solutions step by step; "
                f"verifier {verifier.name!r} is outcome-only"
            )

    def solve(
        self,
        problems: Sequence[Problem],
        generator: Generator,
        task: Task,
        verifier: Verifier | None = None,
    ) -> list[ProblemResult]:
        self.check(task, generator, verifier)
        results = []
        for problem in problems:
            start = time.perf_counter()
            result = self.solve_one(problem, generator, task, verifier)
            result.compute.wall_s = time.perf_counter() - start
            results.append(result)
        return results

    @abstractmethod
    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult: ...


STRATEGIES: Registry[Strategy] = Registry("strategy")


def get_strategy(name: str, **options: Any) -> Strategy:
    import testtime.scale  # noqa: F401  (registers the built-in strategies)

    return STRATEGIES.create(name, **options)
