"""Parallel scaling on the embedded TinyReasoner: self-consistency, RPC, FFS, TTSPM.

    python benchmarks/scaling_parallel.py [--level 6] [--problems 100] [--max-n 64]

1. maj@N vs pass@1 (Wang et al.): one pool of max-n samples per problem, every
   budget by subsampling; the headline is maj@64 − pass@1.
2. RPC (Zhou et al.) vs majority on the same pool (with logprobs): samples RPC
   needs to match majority's accuracy.
3. FFS (spec §3, sync) vs majority at equal N: accuracy and generated tokens.
4. TTSPM (spec §7): estimate p from N <= 4, predict the saturation point
   N* = ceil(ln(ε/p) / ln(1 − p)) of F(N) = 1 − (1 − p)^N, compare with the
   observed knee (first N whose per-sample marginal gain falls below ε); and the
   per-problem mixture mean_i 1 − (1 − p_i)^N (p_i each problem's pass@1), both
   checked on every N of a dense grid (``--dense``: every N to 16, then every 8).

Generation is resumable (run stores under runs/benchmarks/); the summary goes
to benchmarks/results/scaling_parallel.json (written atomically).
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

from scaling_common import (
    common_args,
    curve,
    harness,
    model_info,
    powers_of_two,
    samples_to_match,
    settings,
    setup,
)

from testtime.scale.ttspm import fit_p, observed_knee, saturation_point
from testtime.store import atomic_write_json


def ttspm(coverage: dict[int, float], mixture: dict[int, float], epsilon: float) -> dict[str, Any]:
    """Spec §7 on the measured coverage (pass@N) curve: p from N <= 4, predicted N*,
    observed knee, the model curve next to the measured one, and the per-problem
    mixture's curve; each model's largest error over the measured N."""
    p = fit_p(coverage)
    single = {n: 1.0 - (1.0 - p) ** n for n in sorted(coverage)}
    return {
        "p_hat": p, "epsilon": epsilon, "predicted_n_star": saturation_point(p, epsilon),
        "observed_knee": observed_knee(coverage, epsilon),
        "predicted_curve": single, "mixture_curve": mixture, "observed_curve": coverage,
        "max_error_single_p": max(abs(single[n] - coverage[n]) for n in coverage),
        "max_error_mixture": max(abs(mixture[n] - coverage[n]) for n in coverage if n in mixture),
    }


def dense_grid(max_n: int) -> list[int]:
    return sorted(set(range(1, min(16, max_n) + 1)) | set(range(16, max_n + 1, 8)) | {max_n})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # with --verifier (e.g. prm): also weighted-majority and best-of-n
    common_args(parser, level=6, problems=100, verifier=None)
    parser.add_argument("--max-n", type=int, default=64)
    parser.add_argument("--ffs-n", default="4,16,64")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--epsilon", type=float, default=0.005)
    parser.add_argument("--subsets", type=int, default=8, help="random k-subsets per problem")
    parser.add_argument("--dense", action="store_true", help="every N to 16, then every 8 (TTSPM check)")
    args = parser.parse_args()
    task, generator, verifier = setup(args)
    budgets = dense_grid(args.max_n) if args.dense else powers_of_two(args.max_n)
    options = {"temperature": args.temperature, "max_tokens": 256}
    start = time.perf_counter()
    scored = ["weighted-majority", "best-of-n"] if verifier else []
    pool = harness(task, generator, verifier, ["sample", "majority", "rpc", *scored], budgets,
                   "parallel-pool", args, options, max_subsets=args.subsets)
    pool_s = time.perf_counter() - start
    ffs_budgets = [int(x) for x in args.ffs_n.split(",")]
    start = time.perf_counter()
    ffs = harness(task, generator, None, ["ffs", "majority"], ffs_budgets, "parallel-ffs", args, options)
    ffs_s = time.perf_counter() - start

    rows = pool.rows + [r for r in ffs.rows if r["strategy"] == "ffs"]  # ffs rows carry their paired diff
    pass1 = curve(rows, "sample")[1]
    maj, rpc = curve(rows, "majority"), curve(rows, "rpc")
    tokens = {s: curve(rows, s, "generated_tokens") for s in ("majority", "ffs")}
    ffs_acc = curve(rows, "ffs")
    summary = {
        "settings": settings(args),
        "model": model_info(args.backend, generator.num_parameters),
        "wall_s": {"pool": pool_s, "ffs": ffs_s},
        "pass@1": pass1,
        "maj@max_n": maj[args.max_n],
        "maj@max_n_minus_pass@1_points": 100.0 * (maj[args.max_n] - pass1),
        "rpc_vs_majority": {
            n: {"majority": maj[n], "rpc": rpc[n], "rpc_samples_to_match": samples_to_match(maj[n], rpc)}
            for n in budgets
        },
        "ffs_vs_majority": {
            n: {
                "ffs_accuracy": ffs_acc[n], "majority_accuracy": maj.get(n),
                "ffs_tokens": tokens["ffs"][n], "majority_tokens": tokens["majority"].get(n),
                "token_saving": None if n not in tokens["majority"]
                else 1.0 - tokens["ffs"][n] / tokens["majority"][n],
            }
            for n in ffs_budgets
        },
        "ttspm": ttspm(curve(rows, "majority", "coverage"), curve(rows, "majority", "predicted_coverage"),
                       args.epsilon),
        "majority_accuracy_knee": observed_knee(maj, args.epsilon),
        "rows": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.results / "scaling_parallel.json", summary)
    for name in ("accuracy_vs_n.png", "accuracy_vs_flops.png", "paired_difference_vs_n.png"):
        if (pool.out_dir / name).exists():
            shutil.copyfile(pool.out_dir / name, args.results / f"scaling_parallel_{name}")
    print(f"pass@1 {pass1:.3f}  maj@{args.max_n} {maj[args.max_n]:.3f}  "
          f"gain {summary['maj@max_n_minus_pass@1_points']:.1f} points")
    for n in budgets:
        extra = "".join(f"  {s} {curve(rows, s)[n]:.3f}" for s in scored)
        print(f"N={n:3d}  majority {maj[n]:.3f}  rpc {rpc[n]:.3f}{extra}")
    for n, d in summary["ffs_vs_majority"].items():
        print(f"FFS N={n}: acc {d['ffs_accuracy']:.3f} tokens {d['ffs_tokens']:.0f} | "
              f"majority acc {d['majority_accuracy']} tokens {d['majority_tokens']}")
    t = summary["ttspm"]
    print(f"TTSPM: p̂={t['p_hat']:.3f}  predicted N*={t['predicted_n_star']}  "
          f"observed coverage knee={t['observed_knee']}  "
          f"majority-accuracy knee={summary['majority_accuracy_knee']}  max |error| over N: "
          f"single p {t['max_error_single_p']:.3f}, per-problem mixture {t['max_error_mixture']:.3f}")
    print(f"summary: {args.results / 'scaling_parallel.json'}")


if __name__ == "__main__":
    main()
