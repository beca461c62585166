"""``testtime learn``: test-time learning methods on a task's held-out problems
(thin wrapper over :mod:`testtime.learn`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from testtime.cli.main import app
from testtime.cluster import RAY_HELP, RAY_TASKS_HELP, optional_session

if TYPE_CHECKING:
    from testtime.learn import LearnRequest


def method_help(name: str) -> str:
    """Every option of learn method ``name`` with its default (the method's preset
    applied), and its paper."""
    from testtime.cli.describe import config_options, paper_of, render
    from testtime.learn import METHODS

    method = METHODS.get(name)
    kind = getattr(method, "config", None)
    options = config_options(kind, method.preset) if kind is not None else []
    return render(f"learn method {name}", paper_of(method), options,
                  "-o KEY=VALUE or --KEY VALUE after the method", {"seed": "set by --seed"})


def extra_options(args: list[str]) -> list[str]:
    """``--steps 20 --objective=ce --reshape`` (what follows the method) -> KEY=VALUE pairs."""
    pairs, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ValueError(f"unexpected argument {arg!r} (method options: --KEY VALUE or -o KEY=VALUE)")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"  # a bare flag
        pairs.append(f"{key}={value}")
        i += 1
    return pairs


@app.command(
    add_help_option=False,
    # Options this command does not know are the method's own (`learn dco --objective ce`).
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def learn(
    ctx: typer.Context,
    method: str | None = typer.Argument(None, help="method name (see --list)"),
    task: str = typer.Option("arith", help="task name or a .jsonl file"),
    split: str = typer.Option("8-12", help="difficulty levels of the held-out problems: 8-12 or 4,6"),
    problems: int = typer.Option(32, help="held-out problems (spread over the split's levels)"),
    out: Annotated[
        Path | None, typer.Option(help="run directory (rerun the same command to resume)")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="starting model directory (default: the method's shipped model, mostly TinyReasoner; never written)"),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="method option KEY=VALUE (repeatable), e.g. -o steps=20"),
    ] = None,
    backend_option: Annotated[
        list[str] | None,
        typer.Option(help="backend option KEY=VALUE (repeatable) of methods that take a "
                     "backend (dynamic-cheatsheet -o mode=curator), e.g. split_n=true, model=NAME"),
    ] = None,
    seed: int = typer.Option(0, help="seed of the method (the problems use the held-out seed)"),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's own)"),
    list_: bool = typer.Option(False, "--list", help="print the method names, one per line"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    label_free: bool = typer.Option(
        False, "--label-free", help="seal the held-out problems: any read of a gold label fails"
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="check the options and print the plan (resolved options); no run"
    ),
    ray: str | None = typer.Option(None, help=RAY_HELP + " (per-instance methods: latentseek, tt-si)"),
    ray_tasks: int | None = typer.Option(None, help=RAY_TASKS_HELP),
    help_: bool = typer.Option(
        False, "--help", "-h", help="show this help; after a METHOD, also its options and defaults"
    ),
) -> None:
    """Adapt the model at test time (TTRL, ETTRL, SPINE, DCO, LatentSeek, TT-SI,
    Dynamic Cheatsheet); evaluates before and after on the same problems. Method
    options go after the method: `learn dco --objective ce` or `-o objective=ce`.
    `learn lpn` trains and searches the Latent Program Network instead (`learn lpn -h`)."""
    if method == "lpn":  # the Latent Program Network: its own data and model (cli/lpn.py)
        from testtime.cli.lpn import learn_lpn, lpn_help

        if help_:
            typer.echo(ctx.get_help() + "\n" + lpn_help(), nl=False)
            return
        return learn_lpn([*(option or []), *extra_options(ctx.args)], out, seed=seed,
                         threads=threads, quiet=quiet, dry_run=dry_run)
    from testtime.learn import METHODS

    if help_:
        typer.echo(ctx.get_help())
        if method:
            typer.echo("\n" + method_help(method), nl=False)
        return
    if list_:
        for name in [*METHODS.names(), "lpn"]:
            typer.echo(name)
        return
    if not method:
        raise ValueError("give a method name (see `testtime learn --list`)")
    METHODS.get(method)  # unknown names fail before anything loads
    pairs = [*(option or []), *extra_options(ctx.args)]
    if backend_option and not takes_backend(method):
        raise ValueError(
            f"learn method {method} runs its model in-process: --backend-option applies to "
            "methods with a backend option (dynamic-cheatsheet -o mode=curator -o backend=SPEC)"
        )
    if out is None and not dry_run:
        raise ValueError("give --out DIR for the adapted weights and results")
    import torch

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
        model_dir=model if model is not None else default_model(method),
        seed=seed,
        options=parse_options(pairs),
        backend_options=parse_options(backend_option),
        show_progress=not quiet,
        label_free=label_free,
    )
    if dry_run:
        typer.echo(plan(request), nl=False)
        return
    with optional_session(ray, tasks=ray_tasks):
        metrics = METHODS.create(method, request)
    _report(method, metrics, out)


def default_model(name: str) -> Path:
    """The model learn method ``name`` runs on without ``--model``: the shipped one it
    names (state tuning: the RWKV-7; rerouting: TinyReasoner-MoE), else the embedded
    TinyReasoner."""
    from testtime.backends import embedded_model_dir
    from testtime.learn import METHODS
    from testtime.zoo import WEIGHTS_DIR

    shipped = getattr(METHODS.get(name), "model", None)
    return WEIGHTS_DIR / shipped if shipped else embedded_model_dir()


def takes_backend(name: str) -> bool:
    """Whether learn method ``name`` samples from a backend (its config has ``backend``)."""
    import dataclasses

    from testtime.learn import METHODS

    kind = getattr(METHODS.get(name), "config", None)
    return kind is not None and any(f.name == "backend" for f in dataclasses.fields(kind))


def plan(request: LearnRequest) -> str:
    """What ``learn`` would do: the problems, the model and the method's options as the
    method resolves them (bad values fail here, as they would in the run)."""
    import dataclasses

    from testtime.learn import METHODS
    from testtime.learn.base import build_config

    method = METHODS.get(request.method)
    from testtime.learn.common import parse_split

    levels = parse_split(request.split)  # not the problems' own (sealed when label-free)
    lines = [f"plan: {request.method} on {request.task.name}, {len(request.problems)} held-out "
             f"problems (levels {', '.join(map(str, levels))}); model {request.model_dir}"]  # fmt: skip
    if request.out is not None and request.out.exists():
        lines.append(f"  {request.out} exists: a run resumes from it (or refuses another run's config)")
    kind = getattr(method, "config", None)
    if kind is not None:
        cfg = build_config(kind, {"seed": request.seed, **method.preset}, request.options, request.method)
        lines.append("  options: " + ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(cfg).items()))
    if request.backend_options:
        shown = {k: "***" if k == "api_key" else v for k, v in request.backend_options.items()}
        lines.append("  backend options: " + ", ".join(f"{k}={v!r}" for k, v in shown.items()))
    lines.append("time: not estimated for learn methods; the progress line shows the time left "
                 "after the first step")
    return "\n".join(lines) + "\n"


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
