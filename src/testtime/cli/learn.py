"""``testtime learn``: test-time learning methods on a task's held-out problems
(thin wrapper over :mod:`testtime.learn`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testtime.cli.main import app
from testtime.cluster import RAY_HELP, RAY_TASKS_HELP, optional_session


@app.command()
def learn(
    method: str | None = typer.Argument(None, help="method name (see --list)"),
    task: str = typer.Option("arith", help="task name or a .jsonl file"),
    split: str = typer.Option("8-12", help="difficulty levels of the held-out problems: 8-12 or 4,6"),
    problems: int = typer.Option(32, help="held-out problems (spread over the split's levels)"),
    out: Annotated[
        Path | None, typer.Option(help="run directory (rerun the same command to resume)")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="starting model directory (default: the shipped TinyReasoner; never written)"),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="method option KEY=VALUE (repeatable), e.g. -o steps=20"),
    ] = None,
    seed: int = typer.Option(0, help="seed of the method (the problems use the held-out seed)"),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's own)"),
    list_: bool = typer.Option(False, "--list", help="print the method names, one per line"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ray: str | None = typer.Option(None, help=RAY_HELP + " (per-instance methods: latentseek, tt-si)"),
    ray_tasks: int | None = typer.Option(None, help=RAY_TASKS_HELP),
) -> None:
    """Adapt the model at test time (TTRL, ETTRL, SPINE, DCO, LatentSeek, TT-SI,
    Dynamic Cheatsheet); evaluates before and after on the same problems."""
    from testtime.learn import METHODS

    if list_:
        for name in METHODS.names():
            typer.echo(name)
        return
    if not method:
        raise ValueError("give a method name (see `testtime learn --list`)")
    METHODS.get(method)  # unknown names fail before anything loads
    if out is None:
        raise ValueError("give --out DIR for the adapted weights and results")
    import torch

    from testtime.backends import embedded_model_dir
    from testtime.cli.scale import parse_options
    from testtime.learn import LearnRequest
    from testtime.learn.common import TEST_SEED, make_problems, parse_split
    from testtime.tasks import get_task

    if threads is not None:
        torch.set_num_threads(threads)
    the_task = get_task(task)
    levels = parse_split(split)
    request = LearnRequest(
        method=method,
        task=the_task,
        split=split,
        problems=make_problems(the_task, levels, problems, TEST_SEED),
        out=out,
        model_dir=model if model is not None else embedded_model_dir(),
        seed=seed,
        options=parse_options(option),
        show_progress=not quiet,
    )
    with optional_session(ray, tasks=ray_tasks):
        metrics = METHODS.create(method, request)
    _report(method, metrics, out)


def _report(method: str, metrics: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"testtime learn {method}")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    before, after = metrics.get("before", {}), metrics.get("after", {})
    for key in after:
        if isinstance(after[key], float):
            b = before.get(key)
            table.add_row(key, f"{b:.3f}" if isinstance(b, float) else "", f"{after[key]:.3f}")
    console = Console()
    console.print(table)
    if metrics.get("stopped"):
        console.print(f"[yellow]{metrics['stopped']}[/yellow]")
    console.print(f"results: {out / 'metrics.json'}")
