"""The scaling harness behind ``testtime scale``: accuracy and compute of every
strategy at every budget N, per difficulty, with bootstrap confidence intervals.

Pool strategies (sample, majority, weighted-majority, best-of-n, rpc, greedy)
that sample alike share ONE pool of max(N) candidates per problem; every budget
k is evaluated on k-subsets of that pool (maj@k, BoN@k, ...; the same subsets
for every strategy, :mod:`testtime.scale.subsample`), charged the prompt once and
k/N of the samples. Other strategies run once per budget (:mod:`testtime.scale.plan`).
Rows, paired differences and the files: :mod:`testtime.scale.summary`.

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

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testtime.backends.base import Generator
from testtime.cluster import parallel_map, resumable_map
from testtime.scale.base import Candidate, Compute
from testtime.scale.common import mark_correct, score_candidates
from testtime.scale.plan import Plan, PoolGroup, budgets_of, build_strategy, count_work, make_plan
from testtime.scale.pool import PoolStrategy
from testtime.scale.subsample import add_costs, compute_share, paired_subsets
from testtime.scale.summary import Record, summarise, write_records, write_results
from testtime.store import RunStore, component_identity, result_set
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import SealedTask, grading
from testtime.verifiers.base import Verifier


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
                cost = add_costs(cost, compute_share(verify, fraction))
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

    # A loaded state file's digest joins the key only when there is one, so the keys of
    # strategies without file-backed state (and the runs stored with them) are unchanged.
    state = budgeted.state_identity()
    extra = () if state is None else (state,)
    with grading():  # the store's keys, not the method, read the answer
        by_key = {
            store.key("run", name, n, p.id, p.prompt, p.answer if verifier is not None else None, *extra): p
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
        stats = {k: float(stored["meta"][k]) for k in budgeted.reported if k in stored["meta"]}
        records.append(
            Record(
                name, n, difficulty, problem.id, reference, answer, hit, None, 1,
                compute_share(compute), labels, graded, stats,
            )
        )
    return records


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
    label_free: bool = False,
    show_progress: bool = True,
) -> ScaleOutput:
    """Plan, generate (resumably), evaluate and write results.json, problems.jsonl,
    the plots and report.md into ``out_dir``. ``label_free``: refuse up front any
    strategy that would read gold labels with ``verifier`` (an oracle upper bound),
    and seal the test problems (:class:`testtime.tasks.labels.SealedTask`) so that a
    method reading a label anyway fails with LabelAccess; grading is unaffected."""
    from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn

    from testtime.progress import make_progress
    from testtime.scale.report import write_report

    if label_free:
        task = SealedTask(task, test_seed=seed)
    plan = make_plan(
        task, generator, strategy_names, budgets, verifier=verifier,
        difficulties=difficulties, limit=limit, seed=seed, options=options,
    )
    if label_free:
        gold = {name: s.labels(verifier) for name, s in plan.strategies.items() if s.labels(verifier) != "none"}
        if gold:
            raise ValueError("label-free run, but these read gold labels (upper bounds): " + ", ".join(
                f"{name} ({labels})" for name, labels in gold.items()) + "; use a learned verifier (prm)")
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with make_progress(*columns, disable=not show_progress, transient=True) as bar:
        job = bar.add_task(f"scale {task.name}", total=count_work(plan))
        records = run_scale(
            plan, generator, out_dir, verifier=verifier, backend=backend,
            max_subsets=max_subsets, batch_samples=batch_samples,
            progress=lambda k: bar.advance(job, k),
        )
    # Paired differences where N counts samples, as the baseline's does: N-budget
    # strategies and single-sample pool ones (greedy, sample at N = 1).
    comparable = {name for name, s in plan.strategies.items()
                  if s.budget_param == "n" or (s.budget_param is None and isinstance(s, PoolStrategy))}
    rows = summarise(records, bootstrap=bootstrap, seed=seed, baseline=baseline, comparable=comparable)
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
