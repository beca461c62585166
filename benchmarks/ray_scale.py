"""`testtime run`'s scaling preset in-process vs on a local Ray cluster: identical
results and both wall times, into benchmarks/results/ray_scale.json.

    .venv/bin/python benchmarks/ray_scale.py [--limit 50] [--cpus 2]

In-process runs with one torch thread; the Ray run has ``--cpus`` tasks in flight,
one torch thread each (so it uses ``--cpus`` cores). Wall times include Ray's start.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from testtime import cluster
from testtime.backends import get_generator
from testtime.cli.run import PRESET, best_verifier
from testtime.scale.harness import scale
from testtime.store import atomic_write_json
from testtime.tasks import get_task
from testtime.verifiers import get_verifier

RESULTS = Path(__file__).parent / "results" / "ray_scale.json"


def records(out: Path) -> list[dict]:
    """Per-problem records without wall-clock times, in a fixed order."""
    rows = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    for row in rows:
        row["compute"].pop("wall_s")
    return sorted(rows, key=lambda r: (r["strategy"], r["n"], r["difficulty"], r["problem_id"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50, help="problems (testtime run's default: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args()
    torch.set_num_threads(1)

    task = get_task(PRESET["task_name"])
    verifier_name = best_verifier()
    verifier = get_verifier(verifier_name, task=task)
    generator = get_generator("embedded")
    options = {"temperature": 0.8, "max_tokens": 256, "aggregation": "last", "seed": args.seed}

    def run(out: Path) -> float:
        began = time.perf_counter()
        scale(
            task, generator, PRESET["strategies"], PRESET["budgets"], out, verifier=verifier,
            difficulties=PRESET["difficulties"], limit=args.limit, seed=args.seed,
            options=options, backend="embedded", show_progress=False,
        )  # fmt: skip
        return time.perf_counter() - began

    with tempfile.TemporaryDirectory() as tmp:
        local_s = run(Path(tmp) / "local")
        began = time.perf_counter()
        with cluster.ray_session(num_cpus=args.cpus) as session:
            start_s = time.perf_counter() - began
            ray_s = run(Path(tmp) / "ray") + start_s
        local, on_ray = records(Path(tmp) / "local"), records(Path(tmp) / "ray")
        rows = json.loads((Path(tmp) / "ray" / "results.json").read_text())["rows"]
    result = {
        "preset": PRESET,
        "verifier": verifier_name,
        "limit": args.limit,
        "seed": args.seed,
        "records": len(local),
        "identical": local == on_ray,
        "in_process_s": round(local_s, 1),
        "ray_s": round(ray_s, 1),
        "ray_start_s": round(start_s, 1),
        "ray_tasks_in_flight": session.max_in_flight,
        "speedup": round(local_s / ray_s, 2),
        "accuracy": {f"{r['strategy']}@{r['n']}": round(r["accuracy"], 3) for r in rows},
        "machine": {"cpus_used_in_process": 1, "ray_cpus": args.cpus, "python": platform.python_version()},
    }
    atomic_write_json(RESULTS, result)
    print(json.dumps({k: v for k, v in result.items() if k != "accuracy"}, indent=1))
    if not result["identical"]:
        raise SystemExit("Ray results differ from the in-process results")


if __name__ == "__main__":
    main()
