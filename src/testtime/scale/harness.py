"""The scaling harness behind ``testtime scale``: accuracy and compute of every
strategy at every budget N, per difficulty, with bootstrap confidence intervals.

Pool strategies (sample, majority, weighted-majority, best-of-n, rpc, greedy)
that sample alike share ONE pool of max(N) candidates per problem; every budget
k is evaluated on random k-subsets of that pool (maj@k, BoN@k, ...), charging
the k/N share of the pool's cost. Other strategies run once per budget.

Every finished pool or problem result is committed to a :class:`RunStore` in the
output directory, keyed by all that determines it (prompt text, model identity
and weights hash, sampling settings, seed) and checksummed, so an interrupted
run resumes where it stopped, an edited prompt or retrained model is
recomputed, and changed bytes are never used. A pool depends on its problem and
seed only (not on its batch-mates), and a batch is committed in one
transaction: a kill at any point resumes to the uninterrupted results. The
result files (results.json, problems.jsonl with every candidate, plots,
report.md) appear as one set with a manifest (:func:`testtime.store.result_set`).
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from testtime.backends.base import Generator
from testtime.cluster import parallel_map, resumable_map
from testtime.scale.base import STRATEGIES, Candidate, Compute, Strategy
from testtime.scale.common import check_positive, derive_seed, mark_correct, score_candidates
from testtime.scale.pool import PoolStrategy
from testtime.scale.ttspm import mixture_coverage
from testtime.store import (
    RunStore,
    atomic_write_json,
    atomic_write_text,
    component_identity,
    result_set,
)
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import grading
from testtime.verifiers.base import Verifier

COMPUTE_FIELDS = (
    "generated_tokens", "prompt_tokens", "cached_tokens", "verifier_tokens", "charged_tokens",
    "computed_tokens", "flops", "model_calls", "wall_s",
)


def accepts(name: str, option: str) -> bool:
    """Whether strategy ``name``'s constructor takes keyword ``option``."""
    params = inspect.signature(STRATEGIES.get(name)).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_strategy(name: str, options: dict[str, Any], budget: int | None = None) -> Strategy:
    """Strategy ``name`` with the ``options`` its constructor accepts (others are
    meant for other strategies) and, when it has one, its budget set to ``budget``."""
    factory = STRATEGIES.get(name)
    kwargs = {k: v for k, v in options.items() if accepts(name, k)}
    budget_param = getattr(factory, "budget_param", "n")
    if budget_param is not None and budget is not None:
        kwargs[budget_param] = budget
    return factory(**kwargs)


def budgets_of(strategy: Strategy, budgets: Sequence[int]) -> list[int]:
    """The budgets a strategy is reported at (fixed-budget ones: just N = 1)."""
    return list(budgets) if strategy.budget_param is not None else [1]


@dataclass
class PoolGroup:
    """Pool strategies that sample alike and so share one pool per problem."""

    key: tuple[Any, ...]
    sampler: PoolStrategy
    members: list[str] = field(default_factory=list)
    size: int = 1
    logprobs: bool = False
    scored: bool = False


@dataclass
class Plan:
    """A validated scaling run: built before a single token is generated."""

    task: Task
    problems: dict[int, list[Problem]]
    strategies: dict[str, Strategy]
    budgets: list[int]
    groups: list[PoolGroup]
    per_budget: list[str]  # strategies run once per budget
    options: dict[str, Any]  # strategy options, as given (seed included)


def make_plan(
    task: Task,
    generator: Generator,
    strategy_names: Sequence[str],
    budgets: Sequence[int],
    *,
    verifier: Verifier | None = None,
    difficulties: Sequence[int] | None = None,
    limit: int = 50,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Plan:
    """Check everything (names, budgets, capabilities, verifier needs, problems) up front."""
    if not strategy_names:
        raise ValueError("no strategy given")
    if len(set(strategy_names)) != len(strategy_names):
        raise ValueError(f"a strategy is listed twice: {', '.join(strategy_names)}")
    if not budgets:
        raise ValueError("no budget N given")
    for n in budgets:
        check_positive("every budget N", n)
    check_positive("limit", limit)
    budgets = sorted(set(budgets))
    options = dict(options or {})
    options.setdefault("seed", seed)
    strategies: dict[str, Strategy] = {}
    for name in strategy_names:
        strategy = build_strategy(name, options, max(budgets))
        strategy.check(task, generator, verifier)
        strategies[name] = strategy
    levels = list(difficulties) if difficulties else list(task.levels)
    problems = {d: task.generate(limit, d, seed) for d in levels}
    for d, ps in problems.items():
        if not ps:
            raise ValueError(f"task {task.name!r} produced no problems at difficulty {d}")
    groups: dict[tuple[Any, ...], PoolGroup] = {}
    per_budget = []
    for name, strategy in strategies.items():
        # A relative verifier (pairwise judge) scores each candidate set on its own: a
        # strategy reading it runs once per budget, charged the judge's O(k²) prompts.
        relative = verifier is not None and verifier.relative and strategy.reads_verifier(verifier)
        if not isinstance(strategy, PoolStrategy) or relative:
            per_budget.append(name)
            continue
        group = groups.setdefault(strategy.pool_key(), PoolGroup(strategy.pool_key(), strategy))
        group.members.append(name)
        group.size = max(group.size, *budgets_of(strategy, budgets))
        group.logprobs |= strategy.wants_logprobs
        group.scored |= strategy.needs_verifier
    return Plan(task, problems, strategies, budgets, list(groups.values()), per_budget, options)


# ---------------------------------------------------------------- subsampling maths


def subsets(pool_size: int, k: int, max_subsets: int, rng: np.random.Generator) -> list[list[int]]:
    """Index subsets of size k used to evaluate budget k on a pool: all of them when
    there are at most ``max_subsets`` (and always every single sample for k = 1, the
    pass@1 estimate), else ``max_subsets`` drawn without replacement."""
    if not 1 <= k <= pool_size:
        raise ValueError(f"subset size {k} outside 1..{pool_size}")
    if k == 1 or math.comb(pool_size, k) <= max_subsets:
        return [list(c) for c in itertools.combinations(range(pool_size), k)]
    return [sorted(rng.choice(pool_size, size=k, replace=False).tolist()) for _ in range(max_subsets)]


def paired_subsets(pool_size: int, k: int, max_subsets: int, seed: int, problem_id: str) -> list[list[int]]:
    """The k-subsets budget k is evaluated on for one problem: the same for every
    strategy (seeded by problem and k only), so differences between strategies at
    equal N are paired down to the candidates they saw."""
    rng = np.random.default_rng(derive_seed(seed, "subsets", k, problem_id))
    return subsets(pool_size, k, max_subsets, rng)


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling problems."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def compute_share(compute: Compute, fraction: float = 1.0) -> dict[str, float | None]:
    """What a budget-k subsample of a pool costs (``fraction`` = k / pool size): the
    prompt once (as one call with n = k would send it), ``fraction`` of the samples,
    their verifier scores and time; FLOPs follow the computed tokens."""
    gen = compute.generated_tokens * fraction
    prompt, cached = compute.prompt_tokens, compute.cached_tokens
    ver = compute.verifier_tokens * fraction
    flops = None
    if compute.policy_flops is not None and compute.verifier_flops is not None:
        computed = compute.prompt_tokens - cached + compute.generated_tokens
        per_token = compute.policy_flops / computed if computed else 0.0
        flops = per_token * (prompt - cached + gen) + compute.verifier_flops * fraction
    return {
        "generated_tokens": gen, "prompt_tokens": prompt, "cached_tokens": cached,
        "verifier_tokens": ver, "charged_tokens": prompt + gen + ver,
        "computed_tokens": prompt - cached + gen + ver, "flops": flops,
        "model_calls": compute.model_calls, "wall_s": compute.wall_s * fraction,
    }


def _add(total: dict[str, float | None], part: dict[str, float | None]) -> dict[str, float | None]:
    return {f: None if total[f] is None or part[f] is None else total[f] + part[f] for f in COMPUTE_FIELDS}


# ---------------------------------------------------------------- the run


@dataclass
class Record:
    """One problem under one strategy and budget (mean over the evaluated subsets)."""

    strategy: str
    n: int
    difficulty: int
    problem_id: str
    reference: str
    answer: str | None
    accuracy: float
    coverage: float | None
    subsets: int
    compute: dict[str, float | None]
    labels: str = "none"  # the gold signals the strategy read (testtime.tasks.labels)
    # Every candidate (text, answer, tokens, scores, correct): the pool a pool strategy's
    # budgets are subsampled from, or what a per-budget strategy produced.
    candidates: list[dict[str, Any]] | None = None


def run_scale(
    plan: Plan,
    generator: Generator,
    out_dir: str | Path,
    *,
    verifier: Verifier | None = None,
    backend: str = "",
    max_subsets: int = 16,
    batch_samples: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[Record]:
    """Generate (or resume) everything ``plan`` needs and evaluate every budget.

    The run directory's store is fingerprinted with the run's config (task, backend,
    verifier, strategy options incl. seed); strategies, budgets, difficulties and the
    problem limit may change between resumptions. Item keys add the model's and
    verifier's identities and each problem's prompt (see the module docstring).
    Pools are sampled for several problems per call (about ``batch_samples``
    sequences per call). ``progress(k)`` is called as k problems' worth of work finishes.
    """
    step = progress or (lambda _k: None)
    seed = int(plan.options.get("seed") or 0)
    records: list[Record] = []
    config = {
        "task": plan.task.name, "backend": backend,
        "verifier": None if verifier is None else verifier.name, "options": plan.options,
    }
    # Items are keyed by all that determines them: the model's and verifier's identities
    # (weights hashes) here; the problem's prompt (and answer, when graded) in each key.
    scope = {"model": component_identity(generator), "verifier": component_identity(verifier)}
    with RunStore(out_dir, config, scope=scope) as store:
        for difficulty, problems in plan.problems.items():
            for group in plan.groups:
                pools = _sample_pools(
                    store, group, problems, generator, plan.task, verifier, step, batch_samples
                )
                for name in group.members:
                    records += _evaluate_pool_strategy(
                        plan, name, difficulty, problems, pools, max_subsets, seed, verifier
                    )
            for name in plan.per_budget:
                strategy = plan.strategies[name]
                for n in budgets_of(strategy, plan.budgets):
                    records += _run_per_budget(
                        store, plan, name, n, difficulty, problems, generator, verifier, step
                    )
    return records


def _sample_pools(
    store: RunStore,
    group: PoolGroup,
    problems: Sequence[Problem],
    generator: Generator,
    task: Task,
    verifier: Verifier | None,
    step: Callable[[int], None],
    batch_samples: int,
) -> list[dict[str, Any]]:
    """Each problem's pool, from the store or sampled now — several problems per
    batched call (about ``batch_samples`` sequences) — and committed as it comes."""
    with grading():  # the store's keys, not the method, read the answer
        keys = [
            store.key(
                "pool", group.key, group.size, group.logprobs, group.scored, p.id, p.prompt,
                p.answer if group.scored else None,
            )
            for p in problems
        ]
    missing = [i for i, k in enumerate(keys) if k not in store]
    step(len(problems) - len(missing))
    per_call = max(1, batch_samples // group.size)
    chunks = [missing[start : start + per_call] for start in range(0, len(missing), per_call)]

    def sample(chunk: list[int]) -> list[dict[str, Any]]:
        batch = [problems[i] for i in chunk]
        began = time.perf_counter()
        pools = group.sampler.sample_pools(batch, generator, task, group.size, logprobs=group.logprobs)
        wall = (time.perf_counter() - began) / len(batch)
        values = []
        for problem, (pool, used) in zip(batch, pools, strict=True):
            policy, verify = Compute(wall_s=wall), Compute()
            policy.add_usage(used, generator)
            if group.scored:
                assert verifier is not None  # make_plan checked
                began = time.perf_counter()
                score_candidates(pool, problem, verifier, verify)
                verify.wall_s = time.perf_counter() - began
            values.append({
                "candidates": [asdict(c) for c in pool],
                "policy": policy.to_dict(),
                "verifier": verify.to_dict(),
            })
        return values

    # Chunks (each one batched, seeded call) run in-process or as Ray tasks; the driver
    # stores each chunk in one transaction, so a resumed run re-forms the same chunks.
    for c, values in parallel_map(sample, chunks):
        store.put_many([(keys[i], value, None) for i, value in zip(chunks[c], values, strict=True)])
        step(len(chunks[c]))
    return [store.get(k) for k in keys]


def _evaluate_pool_strategy(
    plan: Plan,
    name: str,
    difficulty: int,
    problems: Sequence[Problem],
    pools: Sequence[dict[str, Any]],
    max_subsets: int,
    seed: int,
    verifier: Verifier | None,
) -> list[Record]:
    strategy = plan.strategies[name]
    assert isinstance(strategy, PoolStrategy)
    records = []
    labels = strategy.labels(verifier)
    for problem, stored in zip(problems, pools, strict=True):
        pool = [Candidate(**c) for c in stored["candidates"]]
        with grading():
            correct = [mark_correct(c.answer, problem, plan.task) for c in pool]
        graded = [{**c, "correct": ok} for c, ok in zip(stored["candidates"], correct, strict=True)]
        policy = Compute.from_dict(stored["policy"])
        verify = Compute.from_dict(stored["verifier"])
        for k in budgets_of(strategy, plan.budgets):
            chosen = paired_subsets(len(pool), k, max_subsets, seed, problem.id)
            start = time.perf_counter()
            answers = [strategy.select([pool[i] for i in idx], problem, plan.task)[0] for idx in chosen]
            select_s = (time.perf_counter() - start) / len(chosen)
            with grading():
                hits = sum(mark_correct(a, problem, plan.task) for a in answers)
                reference = problem.answer
            covered = sum(any(correct[i] for i in idx) for idx in chosen)
            fraction = k / len(pool)
            cost = compute_share(policy, fraction)
            if strategy.reads_verifier(verifier):
                cost = _add(cost, compute_share(verify, fraction))
            cost["wall_s"] = (cost["wall_s"] or 0.0) + select_s
            records.append(
                Record(
                    name, k, difficulty, problem.id, reference, answers[0],
                    hits / len(chosen), covered / len(chosen), len(chosen), cost, labels, graded,
                )
            )
    return records


def _run_per_budget(
    store: RunStore,
    plan: Plan,
    name: str,
    n: int,
    difficulty: int,
    problems: Sequence[Problem],
    generator: Generator,
    verifier: Verifier | None,
    step: Callable[[int], None],
) -> list[Record]:
    budgeted = build_strategy(name, plan.options, n)

    def solve(key: str) -> dict[str, Any]:
        return budgeted.solve([by_key[key]], generator, plan.task, verifier)[0].to_dict()

    with grading():  # the store's keys, not the method, read the answer
        by_key = {
            store.key("run", name, n, p.id, p.prompt, p.answer if verifier is not None else None): p
            for p in problems
        }
    step(sum(k in store for k in by_key))
    results = resumable_map(store, list(by_key), solve, on_done=lambda _k: step(1))
    records = []
    labels = budgeted.labels(verifier)
    for problem, stored in zip(problems, results, strict=True):
        compute = Compute.from_dict(stored["compute"])
        answer = stored["answer"]
        with grading():
            hit, reference = float(mark_correct(answer, problem, plan.task)), problem.answer
            graded = [
                {**c, "correct": mark_correct(c["answer"], problem, plan.task)}
                for c in stored["candidates"]
            ]
        records.append(
            Record(
                name, n, difficulty, problem.id, reference, answer, hit, None, 1,
                compute_share(compute), labels, graded,
            )
        )
    return records


def count_work(plan: Plan) -> int:
    """Problems' worth of generation the plan needs, for a progress bar."""
    per_difficulty = len(plan.groups) + sum(
        len(budgets_of(plan.strategies[name], plan.budgets)) for name in plan.per_budget
    )
    return per_difficulty * sum(len(ps) for ps in plan.problems.values())


# ---------------------------------------------------------------- aggregation


def paired_difference(
    records: Sequence[Record], baseline: Sequence[Record], *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean accuracy difference (records − baseline) over the problems both hold, with a
    paired percentile-bootstrap interval (problems resampled jointly for both)."""
    base = {r.problem_id: r.accuracy for r in baseline}
    diffs = [r.accuracy - base[r.problem_id] for r in records if r.problem_id in base]
    if not diffs:
        raise ValueError("no problem in common with the baseline")
    low, high = bootstrap_ci(diffs, resamples=resamples, seed=seed)
    return float(np.mean(diffs)), low, high


def summarise(
    records: Sequence[Record], *, bootstrap: int = 1000, seed: int = 0, baseline: str | None = "majority"
) -> list[dict[str, Any]]:
    """One row per (strategy, n, difficulty): accuracy with a bootstrap CI over
    problems, coverage (pass@k) for pool strategies, mean compute per problem, the
    gold signals read (``labels``) and, where ``baseline`` ran at the same N, the
    paired difference to it (``diff`` with ``diff_low``/``diff_high``)."""
    groups: dict[tuple[str, int, int], list[Record]] = {}
    for r in records:
        groups.setdefault((r.strategy, r.n, r.difficulty), []).append(r)
    rows = []
    for (strategy, n, difficulty), rs in groups.items():
        acc = [r.accuracy for r in rs]
        low, high = bootstrap_ci(acc, resamples=bootstrap, seed=seed)
        row: dict[str, Any] = {
            "strategy": strategy, "n": n, "difficulty": difficulty, "labels": rs[0].labels,
            "accuracy": float(np.mean(acc)), "ci_low": low, "ci_high": high,
            "coverage": None if rs[0].coverage is None else float(np.mean([r.coverage for r in rs])),
            "problems": len(rs), "baseline": None, "diff": None, "diff_low": None, "diff_high": None,
        }
        singles = groups.get((strategy, 1, difficulty))
        if row["coverage"] is not None and singles is not None:  # TTSPM per-problem mixture
            row["predicted_coverage"] = mixture_coverage([r.coverage for r in singles], n)
        base = groups.get((baseline, n, difficulty)) if baseline is not None else None
        if base is not None and strategy != baseline:
            diff, d_low, d_high = paired_difference(rs, base, resamples=bootstrap, seed=seed)
            row.update(baseline=baseline, diff=diff, diff_low=d_low, diff_high=d_high)
        for f in COMPUTE_FIELDS:
            vals = [r.compute[f] for r in rs]
            row[f] = None if any(v is None for v in vals) else float(np.mean(vals))
        rows.append(row)
    rows.sort(key=lambda r: (r["difficulty"], r["strategy"], r["n"]))
    return rows


def write_records(path: str | Path, records: Sequence[Record]) -> None:
    atomic_write_text(path, "".join(json.dumps(asdict(r)) + "\n" for r in records))


def write_results(path: str | Path, rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> None:
    atomic_write_json(path, {"config": config, "rows": list(rows)})



@dataclass
class ScaleOutput:
    out_dir: Path
    rows: list[dict[str, Any]]
    report: Path


def scale(
    task: Task,
    generator: Generator,
    strategy_names: Sequence[str],
    budgets: Sequence[int],
    out_dir: str | Path,
    *,
    verifier: Verifier | None = None,
    difficulties: Sequence[int] | None = None,
    limit: int = 50,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    backend: str = "",
    max_subsets: int = 16,
    batch_samples: int = 64,
    bootstrap: int = 1000,
    baseline: str | None = "majority",
    show_progress: bool = True,
) -> ScaleOutput:
    """Plan, generate (resumably), evaluate and write results.json, problems.jsonl,
    the plots and report.md into ``out_dir``."""
    from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn

    from testtime.progress import make_progress
    from testtime.scale.report import write_report

    plan = make_plan(
        task, generator, strategy_names, budgets, verifier=verifier,
        difficulties=difficulties, limit=limit, seed=seed, options=options,
    )
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with make_progress(*columns, disable=not show_progress, transient=True) as bar:
        job = bar.add_task(f"scale {task.name}", total=count_work(plan))
        records = run_scale(
            plan, generator, out_dir, verifier=verifier, backend=backend,
            max_subsets=max_subsets, batch_samples=batch_samples,
            progress=lambda k: bar.advance(job, k),
        )
    rows = summarise(records, bootstrap=bootstrap, seed=seed, baseline=baseline)
    out = Path(out_dir)
    config = {
        "task": task.name, "backend": backend, "strategies": list(strategy_names),
        "budgets": plan.budgets, "difficulties": list(plan.problems), "limit": limit,
        "seed": seed, "verifier": None if verifier is None else verifier.name,
        **{k: v for k, v in plan.options.items() if k != "seed"},
        # What the backend is and did (for HTTP ones: what the server honours, adaptations).
        "backend_info": generator.describe(),
    }
    with result_set(out) as stage:  # the files appear as one set (see store.resultset)
        write_records(stage / "problems.jsonl", records)
        report = write_report(stage, rows, config)
        write_results(stage / "results.json", rows, config)
    return ScaleOutput(out, rows, out / report.relative_to(stage))
