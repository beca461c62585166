"""TTRL / ETTRL / SPINE (and TTRL with MRT's progress reward) on a harder split.

Each method starts from the same model and trains on the same unlabeled
held-out problems, evaluated before/after with ``eval_samples`` samples
(pass@1, and maj@n of the *base* model, the number TTRL aims to exceed).
Reports the goal (+10 points pass@1, above the base maj@n), CPU wall time,
rollout tokens (ETTRL vs TTRL) and the response length over training (SPINE vs
TTRL). Results: benchmarks/results/learn_rl.json.

    .venv/bin/python benchmarks/learn_rl.py --methods ttrl,ettrl,spine
"""

from __future__ import annotations

from typing import Any

from learn_common import parser, run_method, write

VARIANTS = {
    "ttrl": ("ttrl", {}),
    "ettrl": ("ettrl", {}),
    "spine": ("spine", {}),
    "ttrl-mrt": ("ttrl", {"reward": "mrt"}),
}


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
            f"base_maj@{n}": before[f"maj@{n}"],
            f"maj@{n}_after": after[f"maj@{n}"],
            "goal_plus10": after["pass@1"] - before["pass@1"] >= 0.10,
            "goal_exceeds_base_maj": after["pass@1"] > before[f"maj@{n}"],
            "mean_length_before": before["mean_length"],
            "mean_length_after": after["mean_length"],
            "rollout_tokens_per_step": result["rollout_tokens"] / max(1, result["steps_done"]),
            "train_wall_s": result["train_wall_s"],
        }
        for key in ("before", "after"):
            result[key].pop("correct", None)
        del log
        runs[name] = result
        write(args, "learn_rl.json", {"options": common, "runs": runs})


if __name__ == "__main__":
    main()
