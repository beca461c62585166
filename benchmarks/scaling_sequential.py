"""Sequential scaling on the embedded TinyReasoner: where does thinking stop paying?

    python benchmarks/scaling_sequential.py [--parts budget,deepening,refine,3d]

- ``budget``: budget forcing accuracy vs the thinking budget B, with the wait cue
  filling the budget (W unlimited) and with plain truncation (W = 0); reports
  where accuracy peaks (s1; m1 found an optimum beyond which accuracy drops).
- ``deepening``: iterative deepening at the same total budgets.
- ``refine``: self-refinement accuracy vs turns, with verifier feedback
  (``revise step j``) and without (``revise``).
- ``3d``: thinking budget x parallel N x turns.

Runs through the scaling harness (resumable, under ``runs/benchmarks/``); the
summary goes to ``benchmarks/results/scaling_sequential.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from scaling_common import brief, common_args, harness, model_info, settings, setup

from testtime.store import atomic_write_json


def peak(rows: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(rows, key=lambda r: r["accuracy"])
    return {"budget": best["n"], "accuracy": best["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common_args(parser, level=8)
    parser.add_argument("--parts", default="budget,deepening,refine,3d")
    parser.add_argument(
        "--budgets",
        default="16,32,64,128,192,256,384",
        help="thinking budgets B (prompt + B must fit the 512-token context)",
    )
    parser.add_argument("--turns", default="1,2,3,4")
    args = parser.parse_args()
    task, generator, verifier = setup(args)
    budgets = [int(b) for b in args.budgets.split(",")]
    turns = [int(t) for t in args.turns.split(",")]
    parts = args.parts.split(",")
    tag = f"{args.task}-{args.level}"
    out = args.results / "scaling_sequential.json"
    # Parts can be run separately: keep the parts of earlier runs.
    earlier = json.loads(out.read_text())["parts"] if out.exists() else {}
    summary: dict[str, Any] = {"config": settings(args), "parts": earlier}
    start = time.time()

    def part(name: str, rows: list[dict[str, Any]], **extra: Any) -> None:
        brief(rows)
        summary["parts"][name] = {"rows": rows, "settings": settings(args), **extra}

    if "budget" in parts:
        for label, waits in (("fill", None), ("truncate", 0)):
            rows = harness(
                task,
                generator,
                None,
                ["budget-forcing"],
                budgets,
                f"budget-{label}-{tag}",
                args,
                {"waits": waits},
            ).rows
            part(f"budget_forcing_{label}", rows, peak=peak(rows))
    if "deepening" in parts:
        rows = harness(
            task,
            generator,
            None,
            ["iterative-deepening"],
            budgets,
            f"deepening-{tag}",
            args,
            {"initial": 16},
        ).rows
        part("iterative_deepening", rows, peak=peak(rows))
    if "refine" in parts:
        for label, v in (("verifier_feedback", verifier), ("no_feedback", None)):
            rows = harness(
                task, generator, v, ["self-refine"], turns, f"refine-{label}-{tag}", args, {}
            ).rows
            part(f"self_refine_{label}", rows)
    if "3d" in parts:
        for t in (1, 2):
            for b in (64, 256):
                rows = harness(
                    task,
                    generator,
                    verifier,
                    ["scaling-3d"],
                    [1, 4],
                    f"3d-t{t}-b{b}-{tag}",
                    args,
                    {"turns": t, "budget": b, "waits": 1},
                ).rows
                part(f"scaling_3d_turns{t}_budget{b}", rows)
    summary["config"]["wall_s"] = time.time() - start
    summary["config"]["model"] = model_info(args.backend, generator.num_parameters)
    atomic_write_json(out, summary)


if __name__ == "__main__":
    main()
