"""Plumbing shared by the phased benchmarks (``agents_tti_rl.py``, ``social_timehc.py``:
teach, then train / evaluate from the taught model): the teach phase's fine-tuning, the
taught start model, result tables under ``benchmarks/results``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from testtime.learn.sft import SFTConfig, teach
from testtime.store.atomic import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def fine_tune(args: argparse.Namespace, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The teach phase: completion-only fine-tuning of ``--model`` (default the embedded
    one) on ``pairs`` into ``OUT/teach`` (resumable; reads ``--steps``, ``--batch-size``,
    ``--lr``); its results row."""
    from testtime.backends import embedded_model_dir

    start = time.monotonic()
    metrics = teach(args.model or embedded_model_dir(), pairs, args.out / "teach", SFTConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, checkpoint_every=max(1, args.steps // 10)))
    return {"pairs": len(pairs), "steps": metrics["steps_done"], "nll_before": metrics["before"]["nll"],
            "nll_after": metrics["after"]["nll"], "wall_s": time.monotonic() - start}


def taught(args: argparse.Namespace) -> Path:
    """The start model of the later phases: ``--model``, else the teach phase's."""
    if args.model is not None:
        return args.model
    path = args.out / "teach" / "model"
    if not path.exists():
        raise SystemExit(f"no taught model at {path}: run the teach phase first or give --model")
    return path


def settings(args: argparse.Namespace, *, drop: Sequence[str] = ()) -> dict[str, Any]:
    """The arguments as JSON (paths as strings), less ``drop``."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in drop}


def write_table(bench: str, phase: str, args: argparse.Namespace, config: dict[str, Any],
          rows: list[dict[str, Any]], header: str, line: Callable[[dict[str, Any]], str]) -> None:
    """``results/<bench>-<phase>-<tag>.json`` (config and rows) and its Markdown table
    (``header``, then ``line(row)`` a row, after ``--note``)."""
    tag = f"{phase}-{args.tag}"
    atomic_write_json(RESULTS / f"{bench}-{tag}.json", {"config": config, "rows": rows})
    text = [f"# {bench} {phase} ({args.tag})", "", *([args.note, ""] if args.note else []), header,
            "|" + "---|" * (header.count("|") - 1), *map(line, rows)]
    atomic_write_text(RESULTS / f"{bench}-{tag}.md", "\n".join(text) + "\n")
