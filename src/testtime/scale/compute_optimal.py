"""Compute-optimal allocation of test-time compute (spec §§2, 7, 11).

Snell et al. (2024), "Scaling LLM test-time compute optimally...", §3: estimate a
problem's difficulty, then spend its budget on the strategy configuration that
was most accurate for that difficulty bin and budget on a calibration split.
Difficulty is estimated label-free (mean final-step verifier score over a few
probe samples, 5 quantile bins) or with the oracle (pass@1 from samples). Liu et
al. (2025), "Can 1B LLM surpass 405B LLM?": the optimal choice depends on the
verifier, so a policy is fitted per verifier, with absolute bins (easy > 50%,
medium 10-50%, hard <= 10% pass@1) as an option. TTSPM saturation budgets
(``scale.ttspm``) are added to the candidate sample counts, and
:func:`search_config` is an AgentTTS-style search over configurations.

Compute is counted as generated + verifier tokens per problem; the probes' tokens
count toward the problem's budget (their samples join the pool of pool methods).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from testtime.backends.base import Generator
from testtime.scale.agent_search import SearchResult, agent_search
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult, Strategy
from testtime.scale.common import (
    check_aggregation,
    check_positive,
    derive_seed,
    mark_correct,
    score_candidates,
)
from testtime.scale.pool import PoolStrategy
from testtime.scale.ttspm import fit_p, saturation_point
from testtime.store.atomic import atomic_write_json
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier, aggregate

POOL_METHODS = ("best-of-n", "weighted-majority", "majority")
METHODS = (*POOL_METHODS, "beam")
ESTIMATES = ("verifier", "oracle")
BINNINGS = ("quantile", "absolute")
ABSOLUTE_EDGES = [0.1, 0.5]  # pass@1 <= 10%: hard, (10%, 50%]: medium, > 50%: easy


@dataclass(frozen=True)
class Config:
    """One strategy configuration: a pool method with n samples, or beam search
    with n beams, width M and lookahead k."""

    method: str
    n: int
    width: int = 0  # beam only
    lookahead: int = 0  # beam only

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown configuration method {self.method!r}; valid: {', '.join(METHODS)}")
        check_positive("n", self.n)
        if self.method == "beam":
            check_positive("beam width", self.width)
            if self.n % self.width:
                raise ValueError(f"beam width {self.width} must divide n = {self.n}")
            if self.lookahead < 0:
                raise ValueError(f"lookahead must be >= 0, got {self.lookahead}")
        elif self.width or self.lookahead:
            raise ValueError(f"{self.method!r} takes no width/lookahead")

    @property
    def name(self) -> str:
        if self.method == "beam":
            return f"beam/n={self.n},w={self.width},la={self.lookahead}"
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
        from testtime.scale.harness import build_strategy

        extra = {"width": self.width, "lookahead": self.lookahead} if self.method == "beam" else {}
        return build_strategy(self.method, {**options, **extra}, self.n)


def beam_widths(n: int) -> list[int]:
    """Snell et al.'s widths M ∈ {4, √N} that divide N."""
    root = math.isqrt(n)
    return sorted({m for m in (4, root) if m >= 1 and n % m == 0 and (m != root or root * root == n)})


def candidate_configs(ns: Sequence[int], *, beam: bool) -> list[Config]:
    configs = [Config(m, n) for n in sorted(set(ns)) for m in POOL_METHODS]
    if beam:
        configs += [
            Config("beam", n, w, la) for n in sorted(set(ns)) for w in beam_widths(n) for la in (0, 1)
        ]
    return configs


def neighbours(config: Config) -> Iterator[Config]:
    """Configurations one move away: n doubled/halved, another aggregation, another
    beam width in {4, √N}, lookahead toggled (the moves of :func:`search_config`)."""
    ns = [config.n * 2] + ([config.n // 2] if config.n > 1 else [])
    if config.method == "beam":
        for n in ns:
            yield from (Config("beam", n, w, config.lookahead) for w in beam_widths(n))
        yield from (Config("beam", config.n, w, config.lookahead) for w in beam_widths(config.n))
        yield Config("beam", config.n, config.width, 1 - min(config.lookahead, 1))
        yield Config("weighted-majority", config.n)
    else:
        yield from (Config(config.method, n) for n in ns)
        yield from (Config(m, config.n) for m in POOL_METHODS if m != config.method)
        yield from (Config("beam", config.n, w, 0) for w in beam_widths(config.n))


def quantile_edges(values: Sequence[float], bins: int = 5) -> list[float]:
    """The bins-1 inner quantiles of ``values`` (bin i holds the i-th fifth by score)."""
    check_positive("bins", bins)
    if not values:
        raise ValueError("no difficulty estimates to bin")
    return [float(q) for q in np.quantile(np.asarray(values, float), [i / bins for i in range(1, bins)])]


def assign_bin(value: float, edges: Sequence[float]) -> int:
    """Bin index of ``value`` (0 = lowest score = hardest); a value on an edge
    goes to the lower bin (so pass@1 = 10% is "hard", 50% "medium")."""
    return bisect.bisect_left(list(edges), value)


def difficulty_estimate(probes: Sequence[Candidate], problem: Problem, task: Task, estimate: str) -> float:
    """Label-free: mean final-step verifier score of the probes; oracle: their pass@1."""
    if estimate == "oracle":
        return float(np.mean([mark_correct(c.answer, problem, task) for c in probes]))
    return float(np.mean([aggregate(c.step_scores or [], "last") for c in probes]))


def tokens(compute: Compute) -> int:
    """The budgeted compute: generated + verifier tokens."""
    return compute.generated_tokens + compute.verifier_tokens


@dataclass
class Policy:
    """A fitted compute-optimal policy: bins' score edges and the configuration
    chosen per (bin, budget). Keyed by the verifier it was fitted with."""

    verifier: str
    estimate: str
    edges: list[float]
    probes: int
    choice: dict[str, dict[str, dict[str, Any]]]  # bin -> budget -> Config as a dict
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # bin -> config -> acc
    cost: dict[str, dict[str, float]] = field(default_factory=dict)  # bin -> config -> tokens
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.estimate not in ESTIMATES:
            raise ValueError(f"unknown difficulty estimate {self.estimate!r}; valid: {', '.join(ESTIMATES)}")
        check_positive("probes", self.probes)
        if list(self.edges) != sorted(self.edges):
            raise ValueError("policy bin edges must be ascending")
        if set(self.choice) != {str(b) for b in range(len(self.edges) + 1)}:
            raise ValueError(f"policy needs a choice for each of the {len(self.edges) + 1} bins")
        for per_budget in self.choice.values():
            for budget, config in per_budget.items():
                check_positive("policy budget", int(budget))
                Config.from_dict(config)

    def config_for(self, bin_index: int, budget: int) -> Config:
        """The choice at the largest fitted budget <= ``budget``."""
        per_budget = self.choice[str(bin_index)]
        fitted = sorted(int(b) for b in per_budget if int(b) <= budget)
        if not fitted:
            raise ValueError(
                f"budget {budget} is below every budget the policy was fitted for "
                f"({', '.join(sorted(per_budget, key=int))})"
            )
        return Config.from_dict(per_budget[str(fitted[-1])])

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        import json

        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except (OSError, json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"cannot load compute-optimal policy {path}: {err}") from None


@dataclass
class CalibrationRecord:
    """One calibration problem: its difficulty estimate, and per configuration the
    expected accuracy and generated + verifier tokens (probes included)."""

    problem_id: str
    estimate: float
    pass1: float
    accuracy: dict[str, float]
    cost: dict[str, float]


def _pool_sampler(options: dict[str, Any], seed: int | None) -> PoolStrategy:
    from testtime.scale.harness import build_strategy

    sampler = build_strategy("majority", {**options, "seed": seed}, 1)
    assert isinstance(sampler, PoolStrategy)
    return sampler


def calibrate(
    problems: Sequence[Problem],
    generator: Generator,
    task: Task,
    verifier: Verifier,
    *,
    max_n: int,
    probes: int,
    estimate: str,
    beam: bool,
    options: dict[str, Any],
    epsilon: float = 0.01,
    max_subsets: int = 8,
    seed: int = 0,
) -> tuple[list[CalibrationRecord], list[Config]]:
    """Sample a scored pool of ``max_n`` per problem, evaluate every pool configuration
    by subsampling it (n in powers of two plus the TTSPM saturation N*), and run
    each beam configuration; returns the records and the configurations evaluated."""
    check_positive("max_n", max_n)
    if probes > max_n:
        raise ValueError(f"probes ({probes}) must be <= max_n ({max_n})")
    sampler = _pool_sampler(options, options.get("seed"))
    aggregation = options.get("aggregation", "last")
    pools, per_sample = [], []
    for problem in problems:
        compute = Compute()
        pool = sampler.sample_pool(problem, generator, task, max_n, compute)
        score_candidates(pool, problem, verifier, compute, aggregation)
        pools.append(pool)
        per_sample.append((compute.generated_tokens / max_n, compute.verifier_tokens / max_n))
    pass1 = [float(np.mean([mark_correct(c.answer, p, task) for c in pool])) for p, pool in zip(problems, pools, strict=True)]
    ns = [2**i for i in range(int(math.log2(max_n)) + 1)]
    saturation = saturation_point(fit_p({n: _coverage(pass1, n) for n in (1, 2, 4)}), epsilon)
    pool_ns = sorted({n for n in ns + [saturation or 1, probes] if probes <= n <= max_n} | {max_n})
    configs = candidate_configs(pool_ns, beam=False)
    beam_configs = [c for c in candidate_configs(ns, beam=True) if c.method == "beam"] if beam else []
    rng = np.random.default_rng(seed)
    from testtime.scale.harness import subsets

    records = []
    for problem, pool, (gen, ver), p1 in zip(problems, pools, per_sample, pass1, strict=True):
        probe_cost = probes * (gen + ver)
        acc: dict[str, float] = {}
        cost: dict[str, float] = {}
        for config in configs:
            selector = config.build(options)
            assert isinstance(selector, PoolStrategy)
            hits = [
                mark_correct(selector.select([pool[i] for i in idx], problem, task)[0], problem, task)
                for idx in subsets(max_n, config.n, max_subsets, rng)
            ]
            acc[config.name] = float(np.mean(hits))
            # Probes are sampled and scored anyway and join the pool; extra samples
            # are scored only when the method reads scores.
            cost[config.name] = probe_cost + (config.n - probes) * (gen + (ver if config.uses_verifier else 0))
        for config in beam_configs:
            result = config.build(options).solve_one(problem, generator, task, verifier)
            acc[config.name] = float(mark_correct(result.answer, problem, task))
            cost[config.name] = probe_cost + tokens(result.compute)
        est = p1 if estimate == "oracle" else difficulty_estimate(pool[:probes], problem, task, estimate)
        records.append(CalibrationRecord(problem.id, est, p1, acc, cost))
    return records, configs + beam_configs


def _coverage(pass1: Sequence[float], n: int) -> float:
    """Mean over problems of 1 − (1 − p)^n (coverage at n under independent samples)."""
    return float(np.mean([1.0 - (1.0 - p) ** n for p in pass1]))


def fit_policy(
    records: Sequence[CalibrationRecord],
    configs: Sequence[Config],
    budgets: Sequence[int],
    *,
    verifier: str,
    estimate: str,
    probes: int,
    binning: str = "quantile",
    bins: int = 5,
) -> Policy:
    """Per (bin, budget): the configuration with the best calibration accuracy among
    those whose mean cost in that bin fits the budget (ties: the cheaper one). An
    empty bin uses the choice fitted on all records."""
    if binning not in BINNINGS:
        raise ValueError(f"unknown binning {binning!r}; valid: {', '.join(BINNINGS)}")
    if not records:
        raise ValueError("no calibration records to fit a policy on")
    for b in budgets:
        check_positive("every budget", b)
    edges = quantile_edges([r.estimate for r in records], bins) if binning == "quantile" else ABSOLUTE_EDGES
    groups: dict[int, list[CalibrationRecord]] = {b: [] for b in range(len(edges) + 1)}
    for r in records:
        groups[assign_bin(r.estimate, edges)].append(r)
    choice: dict[str, dict[str, dict[str, Any]]] = {}
    accuracy: dict[str, dict[str, float]] = {}
    cost: dict[str, dict[str, float]] = {}
    for b, members in groups.items():
        members = members or list(records)
        acc = {c.name: float(np.mean([r.accuracy[c.name] for r in members])) for c in configs}
        spent = {c.name: float(np.mean([r.cost[c.name] for r in members])) for c in configs}
        accuracy[str(b)], cost[str(b)] = acc, spent
        choice[str(b)] = {}
        for budget in budgets:
            feasible = [c for c in configs if spent[c.name] <= budget]
            if not feasible:
                cheapest = min(spent.values())
                raise ValueError(
                    f"budget {budget} tokens is below the cheapest configuration "
                    f"({cheapest:.0f} tokens incl. {probes} probes) in difficulty bin {b}"
                )
            best = max(feasible, key=lambda c: (acc[c.name], -spent[c.name]))
            choice[str(b)][str(budget)] = asdict(best)
    return Policy(verifier, estimate, edges, probes, choice, accuracy, cost,
                  {"calibration_problems": len(records), "binning": binning})


def search_config(
    records: Sequence[CalibrationRecord],
    configs: Sequence[Config],
    budget: int,
    search_budget: int,
) -> SearchResult[Config]:
    """AgentTTS-style search for one budget over calibration records: start from the
    cheapest configuration per method, refine by :func:`neighbours`, each
    evaluation costing the calibration tokens it spends; over-budget
    configurations score -1."""
    known = {c.name: c for c in configs}

    def evaluate(config: Config) -> tuple[float, float]:
        if config.name not in known:  # not calibrated: no evidence for it, no cost
            return float("-inf"), 0.0
        spent = float(np.mean([r.cost[config.name] for r in records]))
        acc = float(np.mean([r.accuracy[config.name] for r in records]))
        return (acc if spent <= budget else -1.0), spent * len(records)

    starts = [min((c for c in configs if c.method == m), key=lambda c: c.n) for m in METHODS
              if any(c.method == m for c in configs)]
    return agent_search(starts, evaluate, neighbours, search_budget)


@STRATEGIES.register("compute-optimal")
class ComputeOptimal(Strategy):
    """Per problem: probe, bin its difficulty, run the policy's configuration for the
    bin within ``budget`` generated + verifier tokens.

    ``policy``: a JSON policy file; loaded when it exists, else fitted on a
    calibration split (``calibration`` problems per difficulty, generated with
    ``calib_seed``, disjoint from the test problems) and saved there. Without a
    path the fitted policy lives in the strategy (one fit per difficulty).
    """

    name = "compute-optimal"
    needs_verifier = True
    budget_param = None  # the budget is in tokens (option ``budget``), not a sample count

    def __init__(
        self,
        budget: int = 2048,
        policy: str | None = None,
        probes: int = 4,
        calibration: int = 16,
        calib_seed: int | None = None,
        max_n: int = 16,
        bins: int = 5,
        binning: str = "quantile",
        estimate: str = "verifier",
        beam: bool = True,
        epsilon: float = 0.01,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int = 256,
        step_tokens: int = 64,
        aggregation: str = "last",
        seed: int | None = 0,
    ) -> None:
        self.budget = check_positive("budget", budget)
        self.probes = check_positive("probes", probes)
        self.calibration = check_positive("calibration", calibration)
        self.max_n = check_positive("max_n", max_n)
        if self.probes > self.max_n:
            raise ValueError(f"probes ({probes}) must be <= max_n ({max_n})")
        self.bins = check_positive("bins", bins)
        if binning not in BINNINGS:
            raise ValueError(f"unknown binning {binning!r}; valid: {', '.join(BINNINGS)}")
        if estimate not in ESTIMATES:
            raise ValueError(f"unknown difficulty estimate {estimate!r}; valid: {', '.join(ESTIMATES)}")
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        self.binning, self.estimate, self.beam, self.epsilon = binning, estimate, beam, epsilon
        self.options = {
            "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
            "step_tokens": step_tokens, "aggregation": check_aggregation(aggregation), "seed": seed,
        }
        _pool_sampler(self.options, seed)  # validates the sampling options now
        self.seed = seed
        self.calib_seed = calib_seed if calib_seed is not None else derive_seed(seed or 0, "calibration")
        self.policy_path = Path(policy) if policy else None
        self.loaded = Policy.load(self.policy_path) if self.policy_path and self.policy_path.exists() else None
        if self.loaded is not None:
            self.loaded.config_for(0, self.budget)  # refuses a budget below the fitted ones now
        self.fitted: dict[tuple[str, int], Policy] = {}

    def check(self, task: Task, generator: Generator, verifier: Verifier | None) -> None:
        super().check(task, generator, verifier)
        assert verifier is not None
        if self.loaded is not None and self.loaded.verifier != verifier.name:
            raise ValueError(
                f"policy {self.policy_path} was fitted with verifier {self.loaded.verifier!r}, "
                f"not {verifier.name!r}; the optimal choice depends on the verifier (refit it)"
            )

    def _use_beam(self, task: Task, generator: Generator, verifier: Verifier) -> bool:
        return (self.beam and task.has_step_checker and verifier.process
                and generator.capabilities.continuation)

    def calibration_split(self, task: Task, difficulty: int, test: Sequence[Problem]) -> list[Problem]:
        """The calibration problems; refuses any that is also a test problem."""
        split = task.generate(self.calibration, difficulty, self.calib_seed)
        overlap = {p.prompt for p in split} & {p.prompt for p in test}
        if overlap:
            raise ValueError(
                f"{len(overlap)} test problem(s) are in the calibration split "
                f"(calib_seed={self.calib_seed}); choose another calib_seed"
            )
        return split

    def policy_for(
        self, problems: Sequence[Problem], generator: Generator, task: Task, verifier: Verifier
    ) -> Policy:
        if self.loaded is not None:
            return self.loaded
        difficulty = problems[0].difficulty
        split = self.calibration_split(task, difficulty, problems)
        key = (verifier.name, difficulty)  # reward-aware: one policy per verifier
        if key not in self.fitted:
            records, configs = calibrate(
                split, generator, task, verifier, max_n=self.max_n, probes=self.probes,
                estimate=self.estimate, beam=self._use_beam(task, generator, verifier),
                options=self.options, epsilon=self.epsilon, seed=self.seed or 0,
            )
            policy = fit_policy(records, configs, [self.budget], verifier=verifier.name,
                                estimate=self.estimate, probes=self.probes,
                                binning=self.binning, bins=self.bins)
            policy.meta.update({"difficulty": difficulty, "calib_seed": self.calib_seed})
            if self.policy_path is not None:
                policy.save(self.policy_path)
            self.fitted[key] = policy
        return self.fitted[key]

    def solve(
        self, problems: Sequence[Problem], generator: Generator, task: Task, verifier: Verifier | None = None
    ) -> list[ProblemResult]:
        self.check(task, generator, verifier)
        assert verifier is not None
        by_level: dict[int, list[Problem]] = {}
        for p in problems:
            by_level.setdefault(p.difficulty, []).append(p)
        for level in by_level.values():  # every level's policy (and overlap check) before solving
            self.policy_for(level, generator, task, verifier)
        return super().solve(problems, generator, task, verifier)

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        assert verifier is not None
        policy = self.policy_for([problem], generator, task, verifier)
        compute = Compute()
        aggregation = self.options["aggregation"]
        sampler = _pool_sampler(self.options, self.seed)
        probes = sampler.sample_pool(problem, generator, task, policy.probes, compute)
        score_candidates(probes, problem, verifier, compute, aggregation)
        est = difficulty_estimate(probes, problem, task, policy.estimate)
        bin_index = assign_bin(est, policy.edges)
        config = policy.config_for(bin_index, self.budget)
        meta: dict[str, Any] = {"bin": bin_index, "estimate": est, "config": config.name,
                                "budget": self.budget, "probe_tokens": tokens(compute)}
        if config.method == "beam":
            result = config.build(self.options).solve_one(problem, generator, task, verifier)
            compute = compute + result.compute
            meta.update(result.meta)
            return ProblemResult(problem.id, result.answer, probes + result.candidates, compute, meta=meta)
        pool = probes + self._extra_samples(problem, generator, task, verifier, config, probes, compute)
        selector = config.build(self.options)
        assert isinstance(selector, PoolStrategy)
        answer, details = selector.select(pool, problem, task)
        meta.update(details, samples=len(pool))
        return ProblemResult(problem.id, answer, pool, compute, meta=meta)

    def _extra_samples(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier,
        config: Config, probes: Sequence[Candidate], compute: Compute,
    ) -> list[Candidate]:
        """Up to n − probes more samples, as many as the remaining budget affords at the
        probes' cost per sample, each capped so generation alone cannot overrun it."""
        wanted = config.n - len(probes)
        left = self.budget - tokens(compute)
        per_sample = (compute.generated_tokens + (compute.verifier_tokens if config.uses_verifier else 0)) / len(probes)
        if per_sample > 0:
            wanted = min(wanted, int(left // per_sample))
        if wanted <= 0:
            return []
        cap = min(self.options["max_tokens"], left // wanted)
        if cap < 1:
            return []
        extra = _pool_sampler({**self.options, "max_tokens": cap}, derive_seed(self.seed, "extra"))
        more = extra.sample_pool(problem, generator, task, wanted, compute)
        if config.uses_verifier:
            score_candidates(more, problem, verifier, compute, self.options["aggregation"])
        return more
