"""Prefix reuse for search on the embedded backend: prompt tokens really prefilled and
wall time per problem of PRM beam search vs best-of-N at equal N, prefix cache on/off.

    python benchmarks/search_prefill.py [--budgets 4,16] [--limit 8] [--level 3]

Beam search prompts the model with ``problem + partial solution`` at every step; with
the prefix cache (:mod:`testtime.backends.prefix_cache`) the partial solution's keys
come from the call that generated it. Best-of-N prefills its prompt once per call
either way. The PRM (:mod:`testtime.backends.lean_scorer`) reuses the prefixes it
scored at the previous step and computes a call's shared prompt once; its cache
follows the row's setting. The setups take turns problem by problem (wall times
paired against load drift). Beam's prefill has a floor: every continued beam
prefills at least the step delimiter that ended its last step (a sample's final
token never runs through the model while it is generated). Writes
benchmarks/results/search_prefill.json.
Single-threaded torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from testtime.backends import embedded_model_dir
from testtime.backends.local import LocalGenerator
from testtime.scale import get_strategy
from testtime.scale.common import mark_correct
from testtime.store.atomic import atomic_write_json
from testtime.tasks import get_task
from testtime.verifiers import get_verifier

RESULTS = Path(__file__).parent / "results" / "search_prefill.json"


SETUPS = (("best-of-n", 64.0), ("beam", 64.0), ("beam", 0.0))


def run_all(n: int, problems, task) -> list[dict]:
    """Every setup on every problem; the setups take turns problem by problem, so a
    change in the machine's load between them does not pass for a speed difference."""
    setups = []
    for name, cache_mb in SETUPS:
        gen = LocalGenerator(embedded_model_dir(), prefix_cache_mb=cache_mb)
        verifier = get_verifier("prm", task=task, prefix_cache_mb=cache_mb)
        strategy = get_strategy(name, n=n, temperature=0.8, seed=0)
        strategy.check(task, gen, verifier)
        setups.append((strategy, gen, verifier, {k: [] for k in FIELDS}))
    for p in problems:
        for strategy, gen, verifier, acc in setups:
            t0 = time.perf_counter()
            res = strategy.solve_one(p, gen, task, verifier)
            acc["wall_s"].append(time.perf_counter() - t0)
            c = res.compute
            # The ledger charges whole prompts; cached_tokens of them were not recomputed.
            acc["cached_tokens"].append(c.cached_tokens)
            acc["prefilled_tokens"].append(c.prompt_tokens - c.cached_tokens)
            acc["generated_tokens"].append(c.generated_tokens)
            acc["verifier_tokens"].append(c.verifier_tokens)
            acc["verifier_computed_tokens"].append(c.verifier_tokens - c.verifier_cached_tokens)
            acc["correct"].append(mark_correct(res.answer, p, task))
    mean = statistics.fmean
    return [
        {"strategy": name, "n": n, "prefix_cache_mb": cache_mb, "problems": len(problems),
         **{f"{k}_per_problem": round(mean(acc[k]), 3 if k == "wall_s" else 1) for k in FIELDS[:-1]},
         "accuracy": round(mean(acc["correct"]), 3)}
        for (name, cache_mb), (_, _, _, acc) in zip(SETUPS, setups, strict=True)
    ]


FIELDS = ("prefilled_tokens", "cached_tokens", "generated_tokens", "verifier_tokens",
          "verifier_computed_tokens", "wall_s", "correct")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default="4,16")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("arith")
    problems = task.generate(args.limit, args.level, seed=0)
    rows = []
    for n in [int(b) for b in args.budgets.split(",")]:
        for r in run_all(n, problems, task):
            rows.append(r)
            print(f"{r['strategy']:>9} N={n:<3} cache={r['prefix_cache_mb']:>4.0f}MB: prefilled "
                  f"{r['prefilled_tokens_per_problem']:>7.1f} cached {r['cached_tokens_per_problem']:>7.1f} "
                  f"generated {r['generated_tokens_per_problem']:>7.1f} "
                  f"prm {r['verifier_tokens_per_problem']:>7.1f} "
                  f"(computed {r['verifier_computed_tokens_per_problem']:>7.1f}) "
                  f"wall {r['wall_s_per_problem']:.3f}s acc {r['accuracy']:.2f}", flush=True)
    ratios = {}
    for n in {r["n"] for r in rows}:
        bon = next(r for r in rows if r["n"] == n and r["strategy"] == "best-of-n")
        beam = next(r for r in rows if r["n"] == n and r["strategy"] == "beam" and r["prefix_cache_mb"])
        ratios[str(n)] = {
            "beam_over_bon_prefill": round(beam["prefilled_tokens_per_problem"] / bon["prefilled_tokens_per_problem"], 2),
            "beam_over_bon_wall": round(beam["wall_s_per_problem"] / bon["wall_s_per_problem"], 2),
            "beam_over_bon_verifier_computed": round(
                beam["verifier_computed_tokens_per_problem"] / bon["verifier_computed_tokens_per_problem"], 2
            ),
        }
    atomic_write_json(args.out, {
        "task": "arith", "level": args.level, "threads": args.threads,
        "load_average_1min": round(os.getloadavg()[0], 2), "goal": "beam <= 1.5x best-of-N",
        "rows": rows, "ratios": ratios,
    })
    print(ratios, f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
