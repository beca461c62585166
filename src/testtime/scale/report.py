"""Plots and the markdown report of a scaling run (results.json rows)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testtime.scale.headline import headline
from testtime.scale.ttspm import fit_p, observed_knee, saturation_point
from testtime.store import atomic_write_bytes, atomic_write_text

PLOTS = {
    "n": "accuracy_vs_n.png",
    "flops": "accuracy_vs_flops.png",  # FLOPs from computed tokens (prefix-cache hits excluded)
    "charged": "accuracy_vs_charged_tokens.png",  # tokens an API would bill
}
DIFF_PLOT = "paired_difference_vs_n.png"
X_LABELS = {
    "n": "N",
    "flops": "FLOPs / problem (computed tokens)",
    "tokens": "computed tokens / problem (parameters unknown)",
    "charged": "charged tokens / problem (prompt per call)",
}


def _by(rows: Sequence[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def _cost(row: dict[str, Any], x: str) -> float | None:
    if x == "n":
        return row["n"]
    if x == "charged":
        return row["charged_tokens"]
    if row["flops"] is not None:
        return row["flops"]
    # Unknown parameter counts (a remote API): computed tokens are the best proxy left.
    return row["computed_tokens"]


def run_title(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    """What a plot shows: task, model (backend), verifier and the range of N."""
    ns = sorted({r["n"] for r in rows})
    span = f"N {ns[0]}–{ns[-1]}" if ns and ns[0] != ns[-1] else f"N {ns[0] if ns else '?'}"
    model = (config.get("backend_info") or {}).get("name") or config.get("backend") or "?"
    return (f"{config.get('task', '?')} · model {model} · "
            f"verifier {config.get('verifier') or 'none'} · {span}")


def plot(rows: Sequence[dict[str, Any]], x: str, path: str | Path, title: str = "") -> None:
    """Accuracy (with its CI band) vs N or FLOPs per problem: one panel per
    difficulty, one line per strategy, log-2 x axis, ``title`` above all panels.
    Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _by(rows, "difficulty")
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True
    )
    any_flops = all(r["flops"] is not None for r in rows)
    xlabel = X_LABELS["tokens" if x == "flops" and not any_flops else x]
    for ax, (difficulty, prow) in zip(axes[0], sorted(panels.items()), strict=True):
        for strategy, srows in sorted(_by(prow, "strategy").items()):
            srows = sorted(srows, key=lambda r: _cost(r, x))
            xs = [_cost(r, x) for r in srows]
            ys = [r["accuracy"] for r in srows]
            ax.plot(xs, ys, marker="o", ms=3, label=strategy)
            ax.fill_between(
                xs, [r["ci_low"] for r in srows], [r["ci_high"] for r in srows], alpha=0.15
            )
        ax.set_xscale("log", base=2)
        ax.set_title(f"difficulty {difficulty}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_differences(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> bool:
    """Paired accuracy difference to the baseline (with its paired-bootstrap CI) vs N,
    one panel per difficulty; False (nothing written) when no row has a difference."""
    rows = [r for r in rows if r.get("diff") is not None]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _by(rows, "difficulty")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (difficulty, prow) in zip(axes[0], sorted(panels.items()), strict=True):
        for strategy, srows in sorted(_by(prow, "strategy").items()):
            srows = sorted(srows, key=lambda r: r["n"])
            xs = [r["n"] for r in srows]
            ys = [r["diff"] for r in srows]
            err = [[y - r["diff_low"] for y, r in zip(ys, srows, strict=True)],
                   [r["diff_high"] - y for y, r in zip(ys, srows, strict=True)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=2, label=strategy)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"difficulty {difficulty}")
        ax.set_xlabel("N")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"accuracy − {rows[0]['baseline']} (paired)")
    axes[0][-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.3f}".rstrip("0").rstrip(".") or "0"
    return str(v)


def markdown(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> str:
    cols = [
        "strategy", "n", "labels", "accuracy", "ci_low", "ci_high", "diff", "diff_low", "diff_high",
        "coverage", "generated_tokens", "prompt_tokens", "verifier_tokens", "charged_tokens",
        "computed_tokens", "flops", "model_calls", "wall_s",
    ]
    lines = [
        "# Test-time scaling report",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in config.items()),
        "",
        *headline(rows),
        "Accuracy with a 95% bootstrap interval over problems; pool strategies are evaluated",
        "on random k-subsets of one pool of max(N) samples (the same subsets for every",
        "strategy at equal N) and charged the prompt once plus k/N of the samples.",
        "diff: accuracy minus the baseline's at the same N and difficulty, with a paired",
        "bootstrap interval over problems. labels: the gold signals the method read",
        "(none = label-free; oracle-* and gold-difficulty rows are upper bounds).",
        "Compute columns are means per problem; charged tokens = every call's prompt plus",
        "generated and verifier tokens (an API bill); computed tokens = charged less",
        "prefix-cache hits; FLOPs = 2 × parameters × computed tokens.",
        "Coverage = pass@k (some sample is right).",
        "",
        f"![accuracy vs N]({PLOTS['n']})",
        f"![accuracy vs FLOPs]({PLOTS['flops']})",
        f"![accuracy vs charged tokens]({PLOTS['charged']})",
        f"![paired difference vs N]({DIFF_PLOT})",
        "",
    ]
    for difficulty, drows in sorted(_by(rows, "difficulty").items()):
        lines += [f"## Difficulty {difficulty}", "", "| " + " | ".join(cols) + " |"]
        lines.append("|" + "---|" * len(cols))
        for r in drows:
            lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
        lines += ["", *_saturation(drows), ""]
    return "\n".join(lines)


def _saturation(rows: Sequence[dict[str, Any]], epsilon: float = 0.01) -> list[str]:
    """TTSPM (spec §7) on the longest coverage curve: predicted vs observed saturation."""
    by_strategy = _by(rows, "strategy").values()
    srows = max(by_strategy, key=lambda rs: sum(r["coverage"] is not None for r in rs), default=[])
    curve = {r["n"]: r["coverage"] for r in srows if r["coverage"] is not None}
    if len(curve) < 3 or min(curve) > 4:
        return []
    p = fit_p(curve)
    lines = [
        f"TTSPM saturation (ε = {epsilon} per added sample): p̂ = {p:.3f} from pass@N, N ≤ 4, "
        f"predicts N* = {saturation_point(p, epsilon)}; observed coverage knee: "
        f"N = {observed_knee(curve, epsilon)} (None: not reached)."
    ]
    mixture = {r["n"]: r["predicted_coverage"] for r in srows if r.get("predicted_coverage") is not None}
    if mixture:
        single = max(abs(1 - (1 - p) ** n - curve[n]) for n in curve)
        per_problem = max(abs(mixture[n] - curve[n]) for n in curve if n in mixture)
        lines.append(
            f"Coverage predicted on every measured N ({', '.join(map(str, sorted(curve)))}): "
            f"one p̂ for all problems max |error| {single:.3f}; per-problem p̂_i mixture {per_problem:.3f}."
        )
    return lines


def write_report(out_dir: str | Path, rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> Path:
    """Both plots and report.md into ``out_dir``; returns the report's path."""
    out = Path(out_dir)
    title = run_title(rows, config)
    for x, name in PLOTS.items():
        plot(rows, x, out / name, title)
    plot_differences(rows, out / DIFF_PLOT, title)
    path = out / "report.md"
    atomic_write_text(path, markdown(rows, config))
    return path
