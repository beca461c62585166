"""An evolve run's report from its saved state: the best program (``best.py``), the
best-so-far curve (``curve.png``), ``summary.json`` and ``report.md`` with the failure
reasons counted."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

from testtime.programs.evolve import load_state
from testtime.programs.problems.base import Problem
from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text


def _category(reason: str) -> str:
    return reason.split(":")[0] if reason else "valid"


def summarise(problem: Problem, state: dict[str, Any]) -> dict[str, Any]:
    db = state["database"]
    programs = db["programs"]
    best = next(p for p in programs if p["id"] == db["best_id"])
    return {
        "problem": problem.name,
        "direction": "maximize" if problem.maximize else "minimize",
        "best_known": problem.best_known,
        "best_score": best["score"],
        "best_id": best["id"],
        "baseline_score": state["curve"][0],
        "generations": state["generation"],
        "programs": len(programs),
        "outcomes": dict(Counter(_category(p["reason"]) for p in programs)),
        "curve": state["curve"],
        "mean_reward": state.get("mean_reward", []),  # index 0: the baseline
        "rl_steps": sum(r.get("updated", 0) for r in state.get("rl", [])),
        "usage": state["usage"],
    }


def plot_curve(problem: Problem, curve: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(range(len(curve)), curve, marker="." if len(curve) < 60 else None, label="best so far")
    ax.axhline(problem.best_known, color="grey", linestyle="--", label="best known")
    ax.set_xlabel("generation")
    ax.set_ylabel("score (" + ("higher" if problem.maximize else "lower") + " is better)")
    ax.set_title(f"evolve {problem.name}: best so far", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_report(problem: Problem, out: Path) -> dict[str, Any]:
    """Write best.py, curve.png, summary.json and report.md into ``out``; the summary."""
    out = Path(out)
    state = load_state(out)
    summary = summarise(problem, state)
    best = next(p for p in state["database"]["programs"] if p["id"] == summary["best_id"])
    atomic_write_text(out / "best.py", best["code"])
    atomic_write_json(out / "summary.json", summary)
    plot_curve(problem, summary["curve"], out / "curve.png")
    outcomes = "\n".join(f"| {k} | {v} |" for k, v in sorted(summary["outcomes"].items()))
    atomic_write_text(out / "report.md", (
        f"# evolve {problem.name}\n\n"
        f"- best score: {summary['best_score']:.10g} ({summary['direction']}; best known "
        f"{problem.best_known:g}; baseline {summary['baseline_score']:.10g})\n"
        f"- generations: {summary['generations']}, programs: {summary['programs']}, "
        f"test-time RL steps: {summary['rl_steps']:g}\n"
        f"- best program: best.py ({summary['best_id']}); curve: curve.png\n\n"
        f"| outcome | programs |\n|---|---|\n{outcomes}\n"
    ))
    return summary
