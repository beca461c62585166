"""Compute-optimal allocation vs best-of-N (Snell et al., 2024): the generated +
verifier tokens per problem compute-optimal needs to reach BoN@max-n's accuracy
(goal: <= 1/4 of BoN@max-n's tokens).

    python benchmarks/scaling_compute_optimal.py [--level 2] [--problems 20] [--max-n 64]

1. Best-of-N at N = 1..max-n on the TEST split (seed --seed), with the verifier.
2. A compute-optimal policy fitted on a disjoint CALIBRATION split over every
   level of the task (seed --calib-seed; one policy for all levels, so a test
   problem's true level is never read) for token budgets = BoN@max-n tokens ×
   --fractions, saved as JSON. The verifier is the learned PRM by default.
3. compute-optimal at each budget on the test split (probes included in its tokens),
   with the paired difference to BoN@max-n on the same problems (bootstrap 95% CI).

Generation is resumable (runs/benchmarks/compute-optimal/...); the summary goes to
benchmarks/results/scaling_compute_optimal.json (written atomically). Numbers on
the shipped TinyReasoner are a pipeline check only: at high arith levels its
pass@1 is ~0, so there is nothing to allocate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from scaling_common import common_args, curve, harness, model_info, powers_of_two, settings, setup

from testtime.scale.optimal_policy import calibrate, fit_policy
from testtime.scale.summary import bootstrap_ci
from testtime.store import atomic_write_json


def per_problem(run_dir: Path, strategy: str, n: int) -> dict[str, float]:
    """A harness run's per-problem accuracy of ``strategy`` at ``n`` (its problems.jsonl)."""
    rows = [json.loads(line) for line in (run_dir / "problems.jsonl").read_text().splitlines()]
    return {r["problem_id"]: r["accuracy"] for r in rows if r["strategy"] == strategy and r["n"] == n}


def paired_vs(values: dict[str, float], baseline: dict[str, float], seed: int) -> list[float]:
    """[mean difference, low, high]: paired percentile-bootstrap 95% CI over the common problems."""
    diffs = [v - baseline[k] for k, v in values.items() if k in baseline]
    low, high = bootstrap_ci(diffs, seed=seed)
    return [sum(diffs) / len(diffs), low, high]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_args(parser, level=2, problems=20)
    parser.add_argument("--calibration", type=int, default=8, help="calibration problems per level")
    parser.add_argument("--calib-levels", default=None,
                        help="levels of the calibration split (default: all the task's levels)")
    parser.add_argument("--max-n", type=int, default=64)
    parser.add_argument("--calib-max-n", type=int, default=16, help="pool per calibration problem")
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--fractions", default="0.0625,0.125,0.25,0.5")
    parser.add_argument("--beam", action="store_true", help="also calibrate beam configurations")
    parser.add_argument("--revise", action="store_true", help="also calibrate revision configurations")
    parser.add_argument("--calib-seed", type=int, default=1000)
    args = parser.parse_args()
    task, generator, verifier = setup(args)
    assert verifier is not None, "compute-optimal needs a verifier"
    options = {"temperature": 0.8, "max_tokens": 256, "seed": args.seed}
    run = f"compute-optimal/{args.task}-{args.level}-{args.verifier}"

    start = time.perf_counter()
    bon = harness(task, generator, verifier, ["best-of-n", "majority"], powers_of_two(args.max_n),
                  f"{run}/bon", args, options)
    acc = curve(bon.rows, "best-of-n")
    spent = {n: curve(bon.rows, "best-of-n", "generated_tokens")[n]
             + curve(bon.rows, "best-of-n", "verifier_tokens")[n] for n in acc}
    target, target_tokens = acc[args.max_n], spent[args.max_n]
    bon_at_max = per_problem(bon.out_dir, "best-of-n", args.max_n)
    budgets = sorted({max(1, round(target_tokens * float(f))) for f in args.fractions.split(",")})

    # One policy across every level: the test problems' true level is never used.
    levels = [int(x) for x in args.calib_levels.split(",")] if args.calib_levels else list(task.levels)
    test_prompts = {p.prompt for p in task.generate(args.problems, args.level, args.seed)}
    split = [p for level in levels for p in task.generate(args.calibration, level, args.calib_seed)
             if p.prompt not in test_prompts]  # disjoint from the test split
    records, configs = calibrate(split, generator, task, verifier, max_n=args.calib_max_n,
                                 probes=args.probes, estimate="verifier", beam=args.beam,
                                 revise=args.revise, options=options, seed=args.seed)
    # A budget below the cheapest configuration is left out (noted in the summary).
    cheapest = min(sum(r.cost[c.name] for r in records) / len(records) for c in configs)
    feasible = [b for b in budgets if b >= cheapest]
    policy_path = args.runs / run / "policy.json"
    fit_policy(records, configs, feasible, verifier=verifier.name, estimate="verifier",
               probes=args.probes).save(policy_path)

    # The run store keys the policy by its path: name the runs by its content, so a
    # refitted policy is never answered from an earlier policy's stored results.
    digest = hashlib.sha256(policy_path.read_bytes()).hexdigest()[:12]
    co: dict[int, dict[str, float]] = {}
    for budget in feasible:
        out = harness(task, generator, verifier, ["compute-optimal"], [1], f"{run}/co-{budget}-{digest}", args,
                      {**options, "budget": budget, "policy": str(policy_path), "probes": args.probes})
        [row] = out.rows
        diff = paired_vs(per_problem(out.out_dir, "compute-optimal", 1), bon_at_max, args.seed)
        co[budget] = {"accuracy": row["accuracy"], "ci": [row["ci_low"], row["ci_high"]],
                      "labels": row["labels"], "tokens": row["generated_tokens"] + row["verifier_tokens"],
                      f"diff_vs_bon@{args.max_n}": diff}
    reached = [b for b in feasible if co[b]["accuracy"] >= target - 1e-12]
    best = min(reached, key=lambda b: co[b]["tokens"]) if reached else None
    summary = {
        "settings": settings(args),
        "model": model_info(args.backend, generator.num_parameters),
        "wall_s": time.perf_counter() - start,
        "best_of_n": {n: {"accuracy": acc[n], "tokens": spent[n]} for n in acc},
        "bon_rows": bon.rows,  # with the paired difference to majority
        "target_accuracy": target, "target_tokens": target_tokens,
        "calibration": {"levels": levels, "problems": len(split)},
        "budgets_skipped_below_probe_cost": [b for b in budgets if b not in feasible],
        "compute_optimal": co,
        # Matching a target no better than one sample's accuracy says nothing.
        "meaningful": target > acc[1],
        "tokens_to_match": None if best is None else co[best]["tokens"],
        "fraction_of_bon_tokens": None if best is None else co[best]["tokens"] / target_tokens,
        "policy": str(policy_path),
    }
    atomic_write_json(args.results / "scaling_compute_optimal.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
