"""Read a run directory — ``testtime scale``, ``learn`` or ``adapt`` output — into one
plain :class:`RunView`: the summary table, the plots, and per problem every candidate.

Reading is forgiving: a missing file gives an empty section, a line of
``problems.jsonl`` that is not a JSON object is counted in ``RunView.skipped`` (with
its line number in ``notes``), missing fields show as blanks. Only a directory that
holds no known result file is an error.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    """One strategy at one budget on one problem (a line of ``problems.jsonl``)."""

    strategy: str
    n: Any
    answer: Any
    accuracy: Any
    compute: dict[str, Any]
    candidates: list[dict[str, Any]] | None


@dataclass
class ProblemView:
    problem_id: str
    difficulty: Any
    reference: Any
    prompt: str | None
    entries: list[Entry] = field(default_factory=list)

    def pools(self) -> list[tuple[list[str], list[dict[str, Any]]]]:
        """Distinct candidate lists with the ``strategy@N`` entries that share each
        (pool strategies at every budget share one pool)."""
        groups: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        for e in self.entries:
            if not e.candidates:
                continue
            key = json.dumps(e.candidates, sort_keys=True, default=str)
            groups.setdefault(key, ([], e.candidates))[0].append(f"{e.strategy}@{e.n}")
        return list(groups.values())


def vote(candidates: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    """The candidates' answers by count, most common first (None = no answer)."""
    return Counter(c.get("answer") for c in candidates).most_common()


@dataclass
class RunView:
    kind: str  # "scale" | "learn" | "adapt"
    path: Path
    config: dict[str, Any]
    columns: list[str]
    rows: list[list[Any]]
    plots: list[Path]
    problems: list[ProblemView] = field(default_factory=list)
    # more tables: (title, columns, rows)
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def _json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        notes.append(f"{path.name}: unreadable ({err})")
        return None


def _tokens(row: dict[str, Any]) -> Any:
    if row.get("charged_tokens") is not None:
        return row["charged_tokens"]
    parts = [row.get("generated_tokens"), row.get("prompt_tokens")]
    return None if any(p is None for p in parts) else sum(parts)


def _jsonl(path: Path, view: RunView) -> list[dict[str, Any]]:
    """The JSON-object lines of ``path`` (none when it is missing); others are skipped
    and noted with their line number."""
    records = []
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError) as err:
                view.skipped += 1
                if view.skipped <= 5:
                    view.notes.append(f"{path.name}:{number}: skipped ({err})")
                continue
            records.append(rec)
    return records


def _problems(path: Path, view: RunView) -> None:
    if not path.exists():
        view.notes.append("no problems.jsonl: per-problem details unavailable")
        return
    by_id: dict[tuple[Any, str], ProblemView] = {}
    for number, rec in enumerate(_jsonl(path, view), 1):
        pid = str(rec.get("problem_id", f"record {number}"))
        problem = by_id.setdefault(
            (rec.get("difficulty"), pid),
            ProblemView(pid, rec.get("difficulty"), rec.get("reference"), rec.get("prompt")),
        )
        candidates = rec.get("candidates")
        problem.entries.append(Entry(
            str(rec.get("strategy", "?")), rec.get("n"), rec.get("answer"), rec.get("accuracy"),
            rec.get("compute") if isinstance(rec.get("compute"), dict) else {},
            [c for c in candidates if isinstance(c, dict)] if isinstance(candidates, list) else None,
        ))  # fmt: skip
    view.problems = list(by_id.values())


def _scale(out: Path, results: dict[str, Any], notes: list[str]) -> RunView:
    columns = ["difficulty", "strategy", "N", "accuracy", "95% CI", "tokens", "calls"]
    rows = [
        [r.get("difficulty"), r.get("strategy"), r.get("n"), r.get("accuracy"),
         (r.get("ci_low"), r.get("ci_high")), _tokens(r), r.get("model_calls")]
        for r in results.get("rows", []) if isinstance(r, dict)
    ]  # fmt: skip
    view = RunView("scale", out, results.get("config") or {}, columns, rows, [], notes=notes)
    _problems(out / "problems.jsonl", view)
    return view


def _adapt(out: Path, results: dict[str, Any], notes: list[str]) -> RunView:
    columns = ["method", "mean error %", "img/s", "fwd/batch", "bwd/batch", "peak MB", "wall s"]
    rows = [
        [key, r.get("mean_error"), r.get("images_per_s"), r.get("forwards_per_batch"),
         r.get("backwards_per_batch"), r.get("peak_mem_mb"), r.get("wall_s")]
        for key, r in (results.get("methods") or {}).items() if isinstance(r, dict)
    ]  # fmt: skip
    view = RunView("adapt", out, results.get("config") or {}, columns, rows, [], notes=notes)
    methods = {k: r for k, r in (results.get("methods") or {}).items() if isinstance(r, dict)}
    domains = list(dict.fromkeys(d for r in methods.values() for d in r.get("per_domain_error") or {}))
    if domains:
        view.tables.append(("online error % per domain", ["method", *domains], [
            [key, *((r.get("per_domain_error") or {}).get(d) for d in domains)] for key, r in methods.items()
        ]))  # fmt: skip
    return view


def _learn(out: Path, metrics: dict[str, Any], notes: list[str]) -> RunView:
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    rows = [[k, before.get(k), v] for k, v in after.items() if isinstance(v, float)]
    view = RunView("learn", out, metrics.get("config") or {}, ["metric", "before", "after"], rows, [],
                   notes=notes)  # fmt: skip
    if metrics.get("stopped"):
        view.notes.append(str(metrics["stopped"]))
    log = [row for row in _jsonl(out / "log.jsonl", view) if isinstance(row.get("step"), int)]
    if log:
        keys = [k for k in log[-1] if k != "step" and isinstance(log[-1][k], int | float)][:8]
        view.tables.append(("training log", ["step", *keys], [[r["step"], *(r.get(k) for k in keys)]
                                                              for r in log]))  # fmt: skip
    b, a = before.get("correct"), after.get("correct")
    if isinstance(a, list):
        b = b if isinstance(b, list) and len(b) == len(a) else [None] * len(a)
        view.tables.append((
            f"per problem: correct samples of {after.get('n', '?')}", ["problem", "before", "after"],
            [[i, was, now] for i, (was, now) in enumerate(zip(b, a, strict=True))],
        ))  # fmt: skip
    return view


def load_run(path: str | Path) -> RunView:
    """The run in ``path`` (scale: results.json with rows; adapt: with methods; learn:
    metrics.json)."""
    out = Path(path)
    if not out.is_dir():
        raise FileNotFoundError(f"no run directory at {out}")
    notes: list[str] = []
    results = _json(out / "results.json", notes)
    if isinstance(results, dict) and "rows" in results:
        view = _scale(out, results, notes)
    elif isinstance(results, dict) and "methods" in results:
        view = _adapt(out, results, notes)
    elif isinstance(metrics := _json(out / "metrics.json", notes), dict):
        view = _learn(out, metrics, notes)
    else:
        detail = f" ({'; '.join(notes)})" if notes else ""
        raise ValueError(f"{out} holds no results.json or metrics.json of a finished run{detail}")
    view.plots = sorted(out.glob("*.png"))
    return view
