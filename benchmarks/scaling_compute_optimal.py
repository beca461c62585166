"""Compute-optimal allocation vs best-of-N (Snell et al., 2024): the generated +
verifier tokens per problem compute-optimal needs to reach BoN@max-n's accuracy
(goal: <= 1/4 of BoN@max-n's tokens).

    python benchmarks/scaling_compute_optimal.py [--level 2] [--problems 20] [--max-n 64]

1. Best-of-N at N = 1..max-n on the TEST split (seed --seed), with the verifier.
2. A compute-optimal policy fitted on a disjoint CALIBRATION split (seed
   --calib-seed) for token budgets = BoN@max-n tokens × --fractions, saved as JSON.
3. compute-optimal at each budget on the test split (probes included in its tokens).

Generation is resumable (runs/benchmarks/compute-optimal/); the summary goes to
benchmarks/results/scaling_compute_optimal.json (written atomically). Numbers on
the shipped TinyReasoner are a pipeline check only: at high arith levels its
pass@1 is ~0, so there is nothing to allocate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scaling_parallel import curve, model_info, powers_of_two

from testtime.backends import get_generator
from testtime.scale.harness import scale
from testtime.scale.optimal_policy import calibrate, fit_policy
from testtime.store import atomic_write_json
from testtime.tasks import get_task
from testtime.verifiers import get_verifier

RESULTS = Path(__file__).parent / "results"
RUNS = Path("runs/benchmarks/compute-optimal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="arith")
    parser.add_argument("--level", type=int, default=2)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--calibration", type=int, default=20)
    parser.add_argument("--max-n", type=int, default=64)
    parser.add_argument("--calib-max-n", type=int, default=16, help="pool per calibration problem")
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--fractions", default="0.0625,0.125,0.25,0.5")
    parser.add_argument("--beam", action="store_true", help="also calibrate beam configurations")
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--verifier", default="oracle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calib-seed", type=int, default=1000)
    parser.add_argument("--runs", type=Path, default=RUNS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # the machine is shared
    task = get_task(args.task)
    generator = get_generator(args.backend)
    verifier = get_verifier(args.verifier, task=task)
    options = {"temperature": 0.8, "max_tokens": 256, "seed": args.seed}
    common = dict(verifier=verifier, difficulties=[args.level], limit=args.problems, seed=args.seed,
                  backend=args.backend, show_progress=False)

    start = time.perf_counter()
    bon = scale(task, generator, ["best-of-n"], powers_of_two(args.max_n), args.runs / "bon",
                options=options, **common)
    acc = curve(bon.rows, "best-of-n")
    spent = {n: curve(bon.rows, "best-of-n", "generated_tokens")[n]
             + curve(bon.rows, "best-of-n", "verifier_tokens")[n] for n in acc}
    target, target_tokens = acc[args.max_n], spent[args.max_n]
    budgets = sorted({max(1, round(target_tokens * float(f))) for f in args.fractions.split(",")})

    test_prompts = {p.prompt for p in task.generate(args.problems, args.level, args.seed)}
    split = [p for p in task.generate(args.calibration, args.level, args.calib_seed)
             if p.prompt not in test_prompts]  # disjoint from the test split
    records, configs = calibrate(split, generator, task, verifier, max_n=args.calib_max_n,
                                 probes=args.probes, estimate="verifier", beam=args.beam,
                                 options=options, seed=args.seed)
    # A budget below the cheapest configuration is left out (noted in the summary).
    cheapest = min(sum(r.cost[c.name] for r in records) / len(records) for c in configs)
    feasible = [b for b in budgets if b >= cheapest]
    policy_path = args.runs / "policy.json"
    fit_policy(records, configs, feasible, verifier=verifier.name, estimate="verifier",
               probes=args.probes).save(policy_path)

    co: dict[int, dict[str, float]] = {}
    for budget in feasible:
        out = scale(task, generator, ["compute-optimal"], [1], args.runs / f"co-{budget}",
                    options={**options, "budget": budget, "policy": str(policy_path),
                             "probes": args.probes}, **common)
        [row] = out.rows
        co[budget] = {"accuracy": row["accuracy"],
                      "tokens": row["generated_tokens"] + row["verifier_tokens"]}
    reached = [b for b in feasible if co[b]["accuracy"] >= target - 1e-12]
    best = min(reached, key=lambda b: co[b]["tokens"]) if reached else None
    summary = {
        "settings": vars(args) | {"runs": str(args.runs)},
        "model": model_info(args.backend, generator.num_parameters),
        "wall_s": time.perf_counter() - start,
        "best_of_n": {n: {"accuracy": acc[n], "tokens": spent[n]} for n in acc},
        "target_accuracy": target, "target_tokens": target_tokens,
        "budgets_skipped_below_probe_cost": [b for b in budgets if b not in feasible],
        "compute_optimal": co,
        # Matching a target no better than one sample's accuracy says nothing.
        "meaningful": target > acc[1],
        "tokens_to_match": None if best is None else co[best]["tokens"],
        "fraction_of_bon_tokens": None if best is None else co[best]["tokens"] / target_tokens,
        "policy": str(policy_path),
    }
    atomic_write_json(RESULTS / "scaling_compute_optimal.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
