"""A small model with test-time compute against a ~4x larger one at equal FLOPs (issue 12;
Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally can be More Effective than
Scaling Model Parameters"; Liu et al. 2025, "Can 1B LLM Surpass 405B LLM?").

Per level, on the same held-out problems (test seed): the small model's pool strategies
(majority, PRM-weighted majority, best-of-N with the PRM) at N = 1..64 and the large
model's sampling (pass@1) and majority at N = 1..16, all at temperature 1 through the
library's harness, FLOPs per problem from computed tokens (policy plus verifier). For
every point of the large model: the best small strategy that spends no more FLOPs, and
which wins; "tie" when the two 95% intervals overlap.

    python benchmarks/testbed_equal_flops.py --small src/testtime/zoo/weights/tiny-reasoner \\
        --large runs/zoo/tiny-reasoner-l --levels 2,6,10 --problems 100

Runs are resumable stores under --runs; the summary goes to
results/testbed_equal_flops.json. The large model's strategies read no verifier, so its
FLOPs are its own; best-of-N and weighted majority charge the PRM's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scaling_common import RESULTS, RUNS, powers_of_two

from testtime.backends import get_generator
from testtime.scale.harness import scale
from testtime.store import atomic_write_json
from testtime.tasks import get_task
from testtime.verifiers import get_verifier

SMALL = ["majority", "weighted-majority", "best-of-n"]
LARGE = ["sample", "majority"]


def run(role: str, model: Path, strategies: list[str], budgets: list[int], level: int,
        args: argparse.Namespace, verifier: Any) -> list[dict[str, Any]]:
    out = args.runs / f"{role}-{model.name}-L{level}"
    result = scale(get_task(args.task), get_generator(str(model)), strategies, budgets, out,
                   verifier=verifier, difficulties=[level], limit=args.problems, seed=args.seed,
                   options={"temperature": 1.0, "max_tokens": args.max_tokens}, backend=str(model),
                   baseline=None, show_progress=False)
    return [{k: r[k] for k in ("strategy", "n", "accuracy", "ci_low", "ci_high", "flops")} for r in result.rows]


def match(large: list[dict[str, Any]], small: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each large-model point, the best small point at no more FLOPs per problem."""
    out = []
    for big in sorted(large, key=lambda r: r["flops"]):
        cheaper = sorted((s for s in small if s["flops"] <= big["flops"]), key=lambda s: s["flops"])  # ties: cheapest
        best = max(cheaper, key=lambda s: s["accuracy"], default=None)
        if best is None:
            winner = "large (the small model's cheapest point costs more)"
        elif best["ci_low"] > big["ci_high"]:
            winner = "small"
        elif big["ci_low"] > best["ci_high"]:
            winner = "large"
        else:
            winner = "tie"
        out.append({"large": big, "small_best": best, "winner": winner})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=Path, required=True, help="the small policy (HF directory)")
    parser.add_argument("--large", type=Path, required=True, help="the larger policy (HF directory)")
    parser.add_argument("--task", default="arith")
    parser.add_argument("--levels", default="2,6,10")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--max-n", type=int, default=64, help="the small model's largest N")
    parser.add_argument("--large-max-n", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--verifier", default="prm", help="the small model's verifier (label-free PRM)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=RUNS / "equal_flops")
    parser.add_argument("--out", type=Path, default=RESULTS / "testbed_equal_flops.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    verifier = get_verifier(args.verifier, task=get_task(args.task))
    levels = {}
    for level in (int(x) for x in args.levels.split(",")):
        small = run("small", args.small, SMALL, powers_of_two(args.max_n), level, args, verifier)
        large = run("large", args.large, LARGE, powers_of_two(args.large_max_n), level, args, None)
        levels[str(level)] = {"small": small, "large": large, "matched": match(large, small)}
        for m in levels[str(level)]["matched"]:
            big, best = m["large"], m["small_best"]
            shown = "-" if best is None else f"{best['strategy']}@{best['n']} {best['accuracy']:.3f}"
            print(f"L{level} large {big['strategy']}@{big['n']} {big['accuracy']:.3f} ({big['flops']:.3g} FLOPs)"
                  f" vs small {shown}: {m['winner']}", flush=True)
        atomic_write_json(args.out, {"settings": {k: str(v) for k, v in vars(args).items()}, "levels": levels})


if __name__ == "__main__":
    main()
