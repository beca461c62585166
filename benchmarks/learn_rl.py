"""TTRL / ETTRL / SPINE (and TTRL with MRT's progress reward) on a harder split.

Each method starts from the same model and trains on the same unlabeled
held-out problems, evaluated before/after with ``eval_samples`` samples
(pass@1, and maj@n of the *base* model, the number TTRL aims to exceed).
Reports the goal (+10 points pass@1, above the base maj@n), CPU wall time,
rollout tokens (ETTRL vs TTRL) and the response length over training (SPINE vs
TTRL). MRT (Qu et al. 2025) claims efficiency: with ``ttrl`` and ``ttrl-mrt`` both
run (same steps), ``mrt_efficiency`` gives the tokens each spent (rollouts plus
MRT's forced-answer samples) until its training pass@1 (5-step moving mean of the
step's rollouts, graded for logging only) first reached the lower of the two
runs' best. Every pass@1 change carries a paired-bootstrap 95% CI over the held-out
problems (``pass1_gain_ci``: after - before; ``vs_ttrl``: a method's pass@1 after
minus TTRL's, on the same problems and evaluation seeds). Results:
benchmarks/results/learn_rl.json.

    .venv/bin/python benchmarks/learn_rl.py --methods ttrl,ettrl,spine,ttrl-mrt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from learn_common import parser, run_method, write

from testtime.scale.summary import bootstrap_ci

VARIANTS = {
    "ttrl": ("ttrl", {}),
    "ettrl": ("ettrl", {}),
    "spine": ("spine", {}),
    "ttrl-mrt": ("ttrl", {"reward": "mrt"}),
}


def training_curve(log_path: Path, window: int = 5) -> list[tuple[float, float]]:
    """(cumulative tokens, moving-mean training pass@1) after every step of a run's log."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    spent, out = 0.0, []
    for i, row in enumerate(rows):
        spent += row.get("rollout_tokens", 0.0) + row.get("mrt_tokens", 0.0)
        recent = [r["pass@1"] for r in rows[max(0, i + 1 - window) : i + 1]]
        out.append((spent, sum(recent) / len(recent)))
    return out


def tokens_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((spent for spent, acc in curve if acc >= target - 1e-12), None)


def mrt_efficiency(runs_dir: Path, tag: str) -> dict[str, Any]:
    curves = {name: training_curve(runs_dir / f"rl-{name}{tag}" / "log.jsonl") for name in ("ttrl", "ttrl-mrt")}
    target = min(max(acc for _, acc in c) for c in curves.values())
    return {"target_training_pass@1": target,
            **{f"{name}_tokens_to_target": tokens_to_reach(c, target) for name, c in curves.items()},
            **{f"{name}_total_tokens": c[-1][0] for name, c in curves.items()}}


def per_problem(evaluation: dict[str, Any]) -> list[float]:
    return [c / evaluation["n"] for c in evaluation["correct"]]


def paired(after: list[float], before: list[float]) -> dict[str, float]:
    """Mean of after - before over problems, with a paired percentile-bootstrap 95% CI."""
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    low, high = bootstrap_ci(diffs)
    return {"diff": sum(diffs) / len(diffs), "low": low, "high": high}


def main() -> None:
    p = parser(__doc__, split="8-12", problems=32)
    p.add_argument("--methods", default="ttrl,ettrl,spine", help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--n-votes", type=int, default=16)
    p.add_argument("--n-samples", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--eval-samples", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=192)
    args = p.parse_args()
    common = {"steps": args.steps, "prompts_per_step": args.prompts_per_step, "n_votes": args.n_votes,
              "n_samples": args.n_samples, "lr": args.lr, "eval_samples": args.eval_samples,
              "max_tokens": args.max_tokens}
    runs: dict[str, Any] = {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if name not in VARIANTS:
            raise SystemExit(f"unknown method {name!r}; valid: {', '.join(VARIANTS)}")
        method, extra = VARIANTS[name]
        result = run_method(args, method, f"rl-{name}", {**common, **extra})
        log = result.pop("log", None)
        before, after = result["before"], result["after"]
        n = args.eval_samples
        result["summary"] = {
            "pass1_before": before["pass@1"],
            "pass1_after": after["pass@1"],
            "pass1_gain_points": 100 * (after["pass@1"] - before["pass@1"]),
            "pass1_gain_ci": paired(per_problem(after), per_problem(before)),
            f"base_maj@{n}": before[f"maj@{n}"],
            f"maj@{n}_after": after[f"maj@{n}"],
            "goal_plus10": after["pass@1"] - before["pass@1"] >= 0.10,
            "goal_exceeds_base_maj": after["pass@1"] > before[f"maj@{n}"],
            "mean_length_before": before["mean_length"],
            "mean_length_after": after["mean_length"],
            "rollout_tokens_per_step": result["rollout_tokens"] / max(1, result["steps_done"]),
            "train_wall_s": result["train_wall_s"],
        }
        if "ttrl" in runs:
            result["summary"]["vs_ttrl"] = paired(per_problem(after), runs["ttrl"]["after_per_problem"])
        result["after_per_problem"] = per_problem(after)
        for key in ("before", "after"):
            result[key].pop("correct", None)
        del log
        runs[name] = result
        extra = {"mrt_efficiency": mrt_efficiency(args.runs, args.tag)} if {"ttrl", "ttrl-mrt"} <= set(runs) else {}
        write(args, "learn_rl.json", {"options": common, "runs": runs, **extra})


if __name__ == "__main__":
    main()
