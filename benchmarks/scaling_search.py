"""Search and MCMC vs sampling, on the embedded TinyReasoner with its learned PRM.

    python benchmarks/scaling_search.py search   # PRM beam / DVTS vs best-of-N, weighted vote, majority
    python benchmarks/scaling_search.py qalign   # QAlign vs best-of-N with the same imperfect reward

``search`` (Snell et al., 2024): strategies x N on the hardest arith level.
``qalign`` (Faria & Smith, 2025): one chain of ``--steps`` MCMC steps per problem,
read at every power of two, against best-of-N / weighted majority / majority at
N = the same powers of two, all scored by the same learned PRM; QAlign's rows carry
a bootstrap CI and the paired difference to ``--baseline`` at the same N (the
same problems), and the chain's acceptance rate is reported.

Generation is resumable (run stores under ``runs/benchmarks/``); the summaries
are written atomically to ``benchmarks/results/``. Single-threaded torch, as the
machine is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from scaling_common import brief, common_args, harness, model_info, settings, setup

from testtime.scale import get_strategy
from testtime.scale.common import mark_correct
from testtime.scale.summary import bootstrap_ci
from testtime.store import RunStore, atomic_write_json, resumable_map


def run_search(args: argparse.Namespace) -> None:
    task, generator, verifier = setup(args)
    budgets = [int(b) for b in args.budgets.split(",")]
    start = time.time()
    rows = harness(
        task,
        generator,
        verifier,
        ["majority", "best-of-n", "weighted-majority", "beam", "dvts"],
        budgets,
        f"search-{args.task}-{args.level}-{args.verifier}",
        args,
        {"width": args.width, "aggregation": "last", "temperature": 0.8},
    ).rows
    brief(rows)
    config = {**settings(args), "model": model_info(args.backend, generator.num_parameters),
              "wall_s": time.time() - start}
    atomic_write_json(args.results / "scaling_search.json", {"config": config, "rows": rows})


def run_qalign(args: argparse.Namespace) -> None:
    task, generator, verifier = setup(args)
    start = time.time()
    problems = task.generate(args.problems, args.level, args.seed)
    strategy = get_strategy("qalign", n=args.steps, beta=args.beta, unit=args.unit, seed=args.seed)
    strategy.check(task, generator, verifier)
    config = {"bench": "qalign", **settings(args)}
    with RunStore(args.runs / f"qalign-{args.task}-{args.level}-{args.verifier}", config) as store:

        def solve(key: str) -> dict[str, Any]:
            problem = by_key[key]
            result = strategy.solve([problem], generator, task, verifier)[0]
            return {
                "by_steps": result.meta["by_steps"],
                "acceptance": result.meta["acceptance_rate"],
            }

        by_key = {store.key("qalign", p.id): p for p in problems}
        chains = resumable_map(store, list(by_key), solve)
    acceptance = statistics.mean(c["acceptance"] for c in chains)
    steps = sorted({int(t) for c in chains for t in c["by_steps"]})
    bon = harness(
        task,
        generator,
        verifier,
        ["best-of-n", "weighted-majority", "majority"],
        steps,
        f"qalign-bon-{args.task}-{args.level}-{args.verifier}",
        args,
        {"aggregation": "last", "temperature": 1.0},  # QAlign proposes at T = 1
    )
    bon_rows = bon.rows
    # The baseline's per-problem accuracy at each N (same problems), for paired differences.
    base: dict[tuple[int, str], float] = {}
    for line in (bon.out_dir / "problems.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["strategy"] == args.baseline:
            base[(r["n"], r["problem_id"])] = r["accuracy"]
    qalign_rows = []
    for t in steps:
        at = [c["by_steps"][str(t)] for c in chains]
        correct = [float(mark_correct(a["answer"], p, task)) for a, p in zip(at, problems, strict=True)]
        low, high = bootstrap_ci(correct, seed=args.seed)
        diffs = [c - base[(t, p.id)] for c, p in zip(correct, problems, strict=True) if (t, p.id) in base]
        d_low, d_high = bootstrap_ci(diffs, seed=args.seed) if diffs else (None, None)
        row = {
            "strategy": "qalign", "n": t, "difficulty": args.level,
            "labels": strategy.labels(verifier),
            "accuracy": statistics.mean(correct), "ci_low": low, "ci_high": high,
            "baseline": args.baseline, "diff": statistics.mean(diffs) if diffs else None,
            "diff_low": d_low, "diff_high": d_high,
            "generated_tokens": statistics.mean(a["generated_tokens"] for a in at),
            "verifier_tokens": statistics.mean(a["verifier_tokens"] for a in at),
        }
        qalign_rows.append(row)
        diff = "" if row["diff"] is None else f" vs {args.baseline} {row['diff']:+.3f} [{d_low:+.2f},{d_high:+.2f}]"
        print(f"{'qalign':>20} N={t:<4} acc={row['accuracy']:.3f} [{low:.2f},{high:.2f}]{diff} "
              f"labels={row['labels']} gen_tokens={row['generated_tokens']:.0f}")
    print(f"acceptance rate {acceptance:.3f}")
    brief(bon_rows)
    config["wall_s"] = time.time() - start
    config["model"] = model_info(args.backend, generator.num_parameters)
    config["acceptance_rate"] = acceptance
    atomic_write_json(
        args.results / "qalign_vs_bon.json", {"config": config, "rows": qalign_rows + bon_rows}
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(required=True)
    search = sub.add_parser("search", help="PRM beam / DVTS vs best-of-N")
    common_args(search, level=10)
    search.add_argument("--budgets", default="4,8,16")
    search.add_argument("--width", type=int, default=4, help="beam width M")
    search.set_defaults(func=run_search)
    qalign = sub.add_parser("qalign", help="QAlign vs best-of-N, same reward")
    common_args(qalign, level=10)
    qalign.add_argument("--steps", type=int, default=64)
    qalign.add_argument("--beta", type=float, default=1.0)
    qalign.add_argument("--unit", default="auto")
    qalign.set_defaults(func=run_qalign)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
