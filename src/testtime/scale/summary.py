"""Aggregating a scaling run's records into result rows: accuracy with a bootstrap
interval over problems, coverage and its TTSPM per-problem prediction, mean
compute per problem, the gold signals read, and the paired difference to a
baseline strategy at the same N; and the record / result files."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from testtime.scale.subsample import COMPUTE_FIELDS
from testtime.scale.ttspm import mixture_coverage
from testtime.store import atomic_write_json, atomic_write_text


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
    stats: dict[str, float] = field(default_factory=dict)  # the strategy's ``reported`` meta


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
    records: Sequence[Record],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    baseline: str | None = "majority",
    comparable: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (strategy, n, difficulty): accuracy with a bootstrap CI over
    problems, coverage (pass@k) for pool strategies, mean compute per problem, the
    gold signals read (``labels``) and, where ``baseline`` ran at the same N, the
    paired difference to it (``diff`` with ``diff_low``/``diff_high``) — for the
    ``comparable`` strategies only (default: all), those whose N counts samples
    like the baseline's (a thinking-token budget N is no sample count)."""
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
        if base is not None and strategy != baseline and (comparable is None or strategy in comparable):
            diff, d_low, d_high = paired_difference(rs, base, resamples=bootstrap, seed=seed)
            row.update(baseline=baseline, diff=diff, diff_low=d_low, diff_high=d_high)
        for f in COMPUTE_FIELDS:
            vals = [r.compute[f] for r in rs]
            row[f] = None if any(v is None for v in vals) else float(np.mean(vals))
        for key in sorted({k for r in rs for k in r.stats}):
            row[key] = float(np.mean([r.stats[key] for r in rs if key in r.stats]))
        rows.append(row)
    rows.sort(key=lambda r: (r["difficulty"], r["strategy"], r["n"]))
    return rows


def write_records(path: str | Path, records: Sequence[Record]) -> None:
    atomic_write_text(path, "".join(json.dumps(asdict(r)) + "\n" for r in records))


def write_results(path: str | Path, rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> None:
    atomic_write_json(path, {"config": config, "rows": list(rows)})
