"""Calibrating and fitting a compute-optimal policy (Snell et al. 2024, §3.2).

:func:`calibrate` measures, on a labelled calibration split disjoint from the
test problems, every configuration's expected accuracy and generated + verifier
tokens per problem, plus each problem's label-free difficulty estimate. Pool
configurations are evaluated on k-subsets of one scored pool of ``max_n``
samples (n in powers of two plus the TTSPM saturation N* of the split's pass@1
mixture); beam and revision configurations run per problem.

:func:`fit_policy` chooses per (difficulty bin, budget) the most accurate
configuration whose mean cost in that bin fits the budget. One policy is fitted
across all the split's difficulty levels: at test time only the estimate, never
a problem's true level, decides its bin. Deviation from Snell et al.: budgets
are in tokens rather than generations. Liu et al. (2025): the best choice
depends on the verifier, so a policy is keyed by the verifier it was fitted with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from testtime.backends.base import Generator
from testtime.scale.base import Compute
from testtime.scale.common import check_positive, mark_correct, score_candidates
from testtime.scale.configs import Config, candidate_configs, tokens
from testtime.scale.difficulty import (
    ABSOLUTE_EDGES,
    assign_bin,
    check_binning,
    check_estimate,
    difficulty_estimate,
    quantile_edges,
)
from testtime.scale.plan import build_strategy
from testtime.scale.pool import PoolStrategy
from testtime.scale.subsample import subsets
from testtime.scale.ttspm import mixture_saturation_point
from testtime.store.atomic import atomic_write_json
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


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
        check_estimate(self.estimate)
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
        try:
            return cls(**json.loads(Path(path).read_text()))
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


def pool_sampler(options: dict[str, Any], seed: int | None) -> PoolStrategy:
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
    revise: bool = False,
    epsilon: float = 0.01,
    max_subsets: int = 8,
    seed: int = 0,
) -> tuple[list[CalibrationRecord], list[Config]]:
    """Sample a scored pool of ``max_n`` per problem, evaluate every pool configuration
    by subsampling it, and run each beam / revision configuration; returns the records
    and the configurations evaluated. ``probes`` = 0: no difficulty estimate (0.0)."""
    check_positive("max_n", max_n)
    if not 0 <= probes <= max_n:
        raise ValueError(f"probes ({probes}) must be in 0..max_n ({max_n})")
    sampler = pool_sampler(options, options.get("seed"))
    aggregation = options.get("aggregation", "last")
    pools, per_sample = [], []
    for problem in problems:
        compute = Compute()
        pool = sampler.sample_pool(problem, generator, task, max_n, compute)
        score_candidates(pool, problem, verifier, compute, aggregation)
        pools.append(pool)
        per_sample.append((compute.generated_tokens / max_n, compute.verifier_tokens / max_n))
    pass1 = [float(np.mean([mark_correct(c.answer, p, task) for c in pool]))
             for p, pool in zip(problems, pools, strict=True)]
    ns = [2**i for i in range(int(math.log2(max_n)) + 1)]
    saturation = mixture_saturation_point(pass1, epsilon)
    pool_ns = sorted({n for n in ns + [saturation or 1, max(probes, 1)] if probes <= n <= max_n} | {max_n})
    configs = candidate_configs(pool_ns, beam=False)
    run_configs = [c for c in candidate_configs(ns, beam=beam, revise=revise) if c.method in ("beam", "revise")]
    rng = np.random.default_rng(seed)
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
        for config in run_configs:
            result = config.build(options).solve_one(problem, generator, task, verifier)
            acc[config.name] = float(mark_correct(result.answer, problem, task))
            cost[config.name] = probe_cost + tokens(result.compute)
        if estimate == "oracle":
            est = p1
        else:
            est = difficulty_estimate(pool[:probes], problem, task, estimate) if probes else 0.0
        records.append(CalibrationRecord(problem.id, est, p1, acc, cost))
    return records, configs + run_configs


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
    check_binning(binning)
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
