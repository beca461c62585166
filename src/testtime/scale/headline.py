"""The headline of a scaling report, stated from its numbers whatever they say: per
difficulty, one sample's accuracy, and at the largest budget every strategy against
the baseline with its paired 95% interval (above, below, or not separable), the
coverage, and whether the run is large enough for its curves not to be noise
(interval half-width <= ``MAX_HALF_WIDTH``, the bar of issue 12)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_HALF_WIDTH = 0.07


def _pct(x: float) -> str:
    return f"{x:.2f}"


def _verdict(row: dict[str, Any]) -> str:
    if row.get("diff") is None or row.get("diff_low") is None:
        return "not paired with the baseline"
    d, lo, hi = row["diff"], row["diff_low"], row["diff_high"]
    side = "above" if lo > 0 else "below" if hi < 0 else "not separable from"
    return f"{side} {row['baseline']} ({d:+.2f} [{lo:+.2f}, {hi:+.2f}])"


def headline(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines: a ``## Headline`` section (empty list without rows)."""
    if not rows:
        return []
    lines = ["## Headline", ""]
    for difficulty in sorted({r["difficulty"] for r in rows}, key=str):
        drows = [r for r in rows if r["difficulty"] == difficulty]
        top = max(r["n"] for r in drows)
        at_top = sorted((r for r in drows if r["n"] == top), key=lambda r: -r["accuracy"])
        one = next((r for r in drows if r["n"] == 1 and r["strategy"] in ("sample", "majority")), None)
        problems = drows[0].get("problems")
        parts = [f"Difficulty {difficulty} ({problems} problems):"]
        if one is not None:
            parts.append(f"one sample {_pct(one['accuracy'])} [{_pct(one['ci_low'])}, {_pct(one['ci_high'])}];")
        best = at_top[0]
        parts.append(f"at N = {top} the best is {best['strategy']} {_pct(best['accuracy'])}"
                     + (f" ({best['accuracy'] - one['accuracy']:+.2f} over one sample)." if one else "."))
        lines.append(" ".join(parts))
        for r in at_top:
            if r["strategy"] != r.get("baseline"):
                lines.append(f"- {r['strategy']}@{top}: {_pct(r['accuracy'])}, {_verdict(r)}.")
        coverage = [r["coverage"] for r in at_top if r.get("coverage") is not None]
        if coverage:
            lines.append(f"- coverage@{top} (some sample right): {_pct(max(coverage))}.")
        half = max((r["ci_high"] - r["ci_low"]) / 2 for r in drows if r.get("ci_low") is not None)
        if half > MAX_HALF_WIDTH:
            lines.append(f"- Too few problems to read the curves: 95% half-widths up to {half:.2f}"
                         f" (> {MAX_HALF_WIDTH}); differences smaller than that are noise.")
        else:
            lines.append(f"- 95% half-widths <= {half:.2f}: the curves are not noise at this size.")
        lines.append("")
    return lines
