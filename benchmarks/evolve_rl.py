"""ThetaEvolve's test-time RL against inference-only evolution at equal samples, with
the shipped TinyReasoner on ``countdown-closest`` (its own task language; the optimum
is known exactly). Both arms use the same sampler, seeds and batch; the RL arm takes
one GRPO step per generation on the shaped evolution rewards.

    python benchmarks/evolve_rl.py --generations 60 --seeds 0,1 --out runs/evolve-rl
"""

from __future__ import annotations

import argparse
import io
import json
import time
from contextlib import redirect_stderr
from pathlib import Path

from testtime.backends import embedded_model_dir
from testtime.programs.database import DatabaseConfig
from testtime.programs.evolve import Evolution, EvolveConfig
from testtime.programs.problems import PROBLEMS
from testtime.programs.rl import PolicyLearner
from testtime.store.atomic import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def arm(learning: bool, seed: int, args: argparse.Namespace) -> dict:
    problem = PROBLEMS.create("countdown-closest")
    out = args.out / f"{'rl' if learning else 'inference'}-lazy{args.lazy_penalty}-seed{seed}"
    config = EvolveConfig(generations=args.generations, batch=args.batch, max_tokens=96,
                          seed=seed, shaping=True,
                          database=DatabaseConfig(lazy_penalty=args.lazy_penalty))
    start = time.monotonic()
    with redirect_stderr(io.StringIO()):
        result = Evolution(problem, PolicyLearner(embedded_model_dir(), learning=learning),
                           out, config).run()
    state = json.loads((out / "state.json").read_text())
    programs = state["database"]["programs"][1:]  # without the baseline
    last = [p for p in programs if p["generation"] > args.generations - 10]
    return {
        "arm": "rl" if learning else "inference-only", "seed": seed, "best": result.best.score,
        "optimum": problem.best_known, "curve": result.curve, "mean_reward": state["mean_reward"],
        "valid_rate": sum(p["score"] is not None for p in programs) / len(programs),
        "valid_rate_last10": sum(p["score"] is not None for p in last) / len(last),
        "mean_reward_last10": sum(p["reward"] for p in last) / len(last),
        "first_generation_at_optimum": next(
            (g for g, s in enumerate(result.curve) if s == problem.best_known), None),
        "completion_tokens": result.usage.completion_tokens, "seconds": round(time.monotonic() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--lazy-penalty", type=int, default=1,
                        help="1: a repeat of the parent, 2: a repeat of any program is lazy")
    parser.add_argument("--out", type=Path, default=Path("runs/evolve-rl"))
    args = parser.parse_args()
    rows = []
    for seed in map(int, args.seeds.split(",")):
        for learning in (False, True):
            row = arm(learning, seed, args)
            rows.append(row)
            print(f"{row['arm']} seed {seed}: best {row['best']:g} (optimum {row['optimum']:g}), "
                  f"valid {row['valid_rate']:.2f} (last 10 generations {row['valid_rate_last10']:.2f}), "
                  f"mean reward last 10 {row['mean_reward_last10']:.3f}, {row['seconds']} s", flush=True)
    problem = PROBLEMS.create("countdown-closest")
    stem = "evolve_rl" if args.lazy_penalty == 1 else f"evolve_rl-lazy{args.lazy_penalty}"
    atomic_write_json(RESULTS / f"{stem}.json", {
        "problem": problem.description, "generations": args.generations, "batch": args.batch,
        "lazy_penalty": args.lazy_penalty,
        "model": "embedded TinyReasoner", "threads": 1, "rows": rows})
    lines = ["| arm | seed | best (optimum) | generation reaching the optimum | valid | valid, last 10 gens "
             "| mean shaped reward, last 10 gens | seconds |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['seed']} | {r['best']:g} ({r['optimum']:g}) | "
              f"{r['first_generation_at_optimum']} | {r['valid_rate']:.2f} | {r['valid_rate_last10']:.2f} | "
              f"{r['mean_reward_last10']:.3f} | {r['seconds']} |" for r in rows]
    atomic_write_text(RESULTS / f"{stem}.md", (
        f"# evolve + test-time RL vs inference-only ({problem.description}; TinyReasoner, "
        f"{args.generations} generations x {args.batch} samples, lazy penalty level "
        f"{args.lazy_penalty}, 1 thread)\n\n" + "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
