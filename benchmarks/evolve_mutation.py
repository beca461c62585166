"""What the evolve loop reaches with no language model: the random-mutation generator
(Gaussian steps on the program's float literals) on the built-in problems, for a fixed
wall-clock budget per problem, one sandbox run at a time.

This is the floor an LM proposer must beat (ThetaEvolve's 8B model reaches 2.63598 on
circle packing and 1.503133 on the first autocorrelation bound). Each problem's run is
resumable under ``--out``; the budget is checked between generations.

    python benchmarks/evolve_mutation.py --seconds 120 --out runs/evolve-mutation
"""

from __future__ import annotations

import argparse
import io
import os
import time
from contextlib import redirect_stderr
from pathlib import Path

from testtime.programs.evolve import Evolution, EvolveConfig, load_state
from testtime.programs.mutate import MutationGenerator
from testtime.programs.problems import PROBLEMS
from testtime.programs.report import write_report
from testtime.programs.sandbox import Limits
from testtime.store.atomic import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def run_problem(name: str, seconds: float, batch: int, out: Path, seed: int) -> dict:
    problem = PROBLEMS.create(name)
    limits = Limits(wall_s=20, cpu_s=20, memory_mb=2048)
    start, generation = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        generation += 1
        config = EvolveConfig(generations=generation, batch=batch, seed=seed)
        with redirect_stderr(io.StringIO()):  # one line per problem instead
            Evolution(problem, MutationGenerator(), out, config, limits).run()
    elapsed = time.monotonic() - start
    summary = write_report(problem, out)
    state = load_state(out)
    programs = state["database"]["programs"]
    return {
        "problem": name, "direction": summary["direction"], "best_known": problem.best_known,
        "baseline": summary["baseline_score"], "best": summary["best_score"],
        "generations": summary["generations"], "programs_evaluated": len(programs),
        "outcomes": summary["outcomes"], "seconds": round(elapsed, 1),
        "mean_run_s": round(sum(p["details"].get("wall_s", 0) for p in programs) / len(programs), 3),
        "curve": summary["curve"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="circle-packing,autocorrelation")
    parser.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget per problem")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/evolve-mutation"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for name in args.problems.split(","):
        row = run_problem(name, args.seconds, args.batch, args.out / name, args.seed)
        rows.append(row)
        print(f"{name}: baseline {row['baseline']:.8g} -> best {row['best']:.8g} "
              f"(best known {row['best_known']:g}) in {row['generations']} generations, "
              f"{row['programs_evaluated']} programs, {row['seconds']} s")
    atomic_write_json(RESULTS / "evolve_mutation.json", {
        "generator": "mutate (random Gaussian steps on float literals, no model)",
        "seconds_per_problem": args.seconds, "batch": args.batch, "seed": args.seed,
        "threads": 1, "rows": rows})
    lines = ["| problem | direction | baseline | best reached | best known | generations | programs | outcomes |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['problem']} | {r['direction']} | {r['baseline']:.8g} | {r['best']:.8g} | "
              f"{r['best_known']:g} | {r['generations']} | {r['programs_evaluated']} | "
              f"{', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))} |" for r in rows]
    atomic_write_text(RESULTS / "evolve_mutation.md", (
        f"# evolve with the random-mutation generator ({args.seconds:g} s per problem, "
        f"batch {args.batch}, 1 thread, shared 2-core CPU)\n\n" + "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
