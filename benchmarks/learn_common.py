"""Plumbing shared by the test-time learning benchmarks (``learn_*.py``): common
arguments, one resumable run per method under ``--runs``, result files."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from testtime.learn import METHODS, LearnRequest
from testtime.learn.common import TEST_SEED, make_problems, parse_split
from testtime.store import atomic_write_json
from testtime.tasks import get_task
from testtime.zoo import reasoner_path

HERE = Path(__file__).resolve().parent


def parser(doc: str, *, split: str, problems: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=reasoner_path(), help="starting model directory")
    p.add_argument("--task", default="arith")
    p.add_argument("--split", default=split, help="difficulty levels of the held-out problems")
    p.add_argument("--problems", type=int, default=problems)
    p.add_argument("--runs", type=Path, default=Path("runs/learn"), help="run directories (resumable)")
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--tag", default="", help="suffix of the result file and run directories")
    return p


def run_method(args: argparse.Namespace, method: str, tag: str, options: dict[str, Any]) -> dict[str, Any]:
    """``testtime learn METHOD`` in-process, into ``--runs/<tag>``; adds the wall time."""
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    request = LearnRequest(
        method=method,
        task=task,
        split=args.split,
        problems=make_problems(task, parse_split(args.split), args.problems, TEST_SEED),
        out=args.runs / (tag + args.tag),
        model_dir=args.model,
        seed=args.seed,
        options=options,
        show_progress=args.progress,
    )
    t0 = time.perf_counter()
    metrics = METHODS.create(method, request)
    metrics.pop("config", None)
    print(f"{tag}: before {_short(metrics.get('before'))} -> after {_short(metrics.get('after'))}", flush=True)
    return {"method": method, "options": options, "wall_s_this_invocation": time.perf_counter() - t0,
            **metrics}


def _short(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return ", ".join(f"{k} {v:.3f}" for k, v in d.items() if isinstance(v, float))


def write(args: argparse.Namespace, name: str, payload: dict[str, Any]) -> Path:
    stem, dot, ext = name.rpartition(".")
    path = args.results / (f"{stem}{args.tag}{dot}{ext}" if args.tag else name)
    atomic_write_json(path, {
        "machine": {"threads": args.threads, "cores": os.cpu_count(), "torch": torch.__version__,
                    "cpu": platform.machine(), "load_average_1min": os.getloadavg()[0]},
        "model": str(args.model),
        "task": args.task,
        "split": args.split,
        "problems": args.problems,
        **payload,
    })
    print(f"wrote {path}")
    return path
