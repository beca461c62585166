"""Set-up shared by the scaling benchmarks (``scaling_*.py``): common arguments, the
task / backend / verifier, harness runs into resumable stores under ``--runs``,
result rows and their one-line summaries.

Verifiers default to the learned PRM (label-free); ``--verifier oracle`` is an
upper bound, and every row says which gold signals it read (``labels``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from testtime.backends import get_generator
from testtime.backends.base import Generator
from testtime.scale.harness import scale
from testtime.tasks import get_task
from testtime.tasks.base import Task
from testtime.verifiers import get_verifier
from testtime.verifiers.base import Verifier

RESULTS = Path(__file__).parent / "results"
RUNS = Path("runs/benchmarks")


def common_args(
    parser: argparse.ArgumentParser, *, level: int, problems: int = 50, verifier: str | None = "prm"
) -> None:
    parser.add_argument("--task", default="arith")
    parser.add_argument("--level", type=int, default=level, help="difficulty")
    parser.add_argument("--problems", type=int, default=problems)
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--verifier", default=verifier,
                        help="prm (label-free), orm, judge, or oracle (an upper bound)")
    parser.add_argument("--baseline", default="majority", help="paired differences are against it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the summary JSON goes")
    parser.add_argument("--runs", type=Path, default=RUNS, help="where the resumable run stores go")


def setup(args: argparse.Namespace) -> tuple[Task, Generator, Verifier | None]:
    """One torch thread (the machine is shared), the task, the backend and the verifier."""
    import torch

    torch.set_num_threads(1)
    task = get_task(args.task)
    verifier = get_verifier(args.verifier, task=task) if args.verifier else None
    return task, get_generator(args.backend), verifier


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"}


def harness(
    task: Task,
    generator: Generator,
    verifier: Verifier | None,
    strategies: list[str],
    budgets: list[int],
    run: str,
    args: argparse.Namespace,
    options: dict[str, Any],
    **extra: Any,
) -> Any:
    """:func:`testtime.scale.harness.scale` on ``--level`` × ``--problems`` into ``--runs/run``."""
    return scale(
        task, generator, strategies, budgets, args.runs / run, verifier=verifier,
        difficulties=[args.level], limit=args.problems, seed=args.seed, options=options,
        backend=args.backend, baseline=args.baseline, show_progress=False, **extra,
    )


def brief(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        diff = "" if r.get("diff") is None else (
            f" vs {r['baseline']} {r['diff']:+.3f} [{r['diff_low']:+.2f},{r['diff_high']:+.2f}]")
        print(
            f"{r['strategy']:>20} N={r['n']:<4} acc={r['accuracy']:.3f} "
            f"[{r['ci_low']:.2f},{r['ci_high']:.2f}]{diff} labels={r['labels']} "
            f"charged={r['charged_tokens']:.0f} computed={r['computed_tokens']:.0f}"
        )


def powers_of_two(max_n: int) -> list[int]:
    return [2**i for i in range(max_n.bit_length()) if 2**i <= max_n]


def curve(rows: list[dict[str, Any]], strategy: str, key: str = "accuracy") -> dict[int, Any]:
    return {r["n"]: r[key] for r in rows if r["strategy"] == strategy}


def samples_to_match(target: float, other: dict[int, float]) -> int | None:
    """Smallest N at which the ``other`` curve reaches ``target`` (None if never)."""
    return next((n for n, acc in sorted(other.items()) if acc >= target - 1e-12), None)


def model_info(backend: str, parameters: int | None) -> dict[str, Any]:
    """Which weights were measured: the model card's training record when there is one."""
    info: dict[str, Any] = {"backend": backend, "parameters": parameters}
    if backend in ("embedded", "tiny-reasoner"):
        from testtime.backends import embedded_model_dir

        record = embedded_model_dir() / "training.json"
    else:
        record = Path(backend) / "training.json"
    if record.is_file():
        training = json.loads(record.read_text())
        info |= {"steps_trained": training.get("steps_trained"), "selected": training.get("selected")}
    return info
