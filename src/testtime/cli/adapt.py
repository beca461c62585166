"""``testtime adapt``: the CIFAR-10-C test-time adaptation benchmark (thin wrapper over
:func:`testtime.adapt.benchmark.run_benchmark`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testtime.cli.main import app
from testtime.cluster import RAY_HELP, RAY_TASKS_HELP, optional_session


def method_help(name: str) -> str:
    """Every constructor option of adaptation method ``name`` with its default, and its paper."""
    from testtime.adapt import ADAPT_METHODS, NEEDS_SOURCE_DATA
    from testtime.cli.describe import paper_of, render, signature_options

    factory = ADAPT_METHODS.get(name)
    title = f"adaptation method {name}" + (" (needs source data)" if name in NEEDS_SOURCE_DATA else "")
    options = signature_options(factory, skip=("model", "source_data"))
    return render(title, paper_of(factory), options, "-o KEY=VALUE or -o METHOD.KEY=VALUE")


def method_options(pairs: list[str], names: list[str]) -> dict[str, dict]:
    """``-o lr=1e-4`` (every listed method taking ``lr``) / ``-o tent.lr=1e-4`` (only
    tent) -> {method: {option: value}}; an option no listed method takes is an error."""
    import inspect

    from testtime.adapt import ADAPT_METHODS
    from testtime.cli.scale import parse_options

    out: dict[str, dict] = {}
    for key, value in parse_options(pairs).items():
        target, dot, option = key.rpartition(".")
        chosen = [target] if dot else names
        if dot and target not in names:
            raise ValueError(f"-o {key}: method {target!r} is not among --method {','.join(names)}")
        takers = [m for m in chosen if option in inspect.signature(ADAPT_METHODS.get(m)).parameters
                  and option not in ("model", "source_data")]
        if not takers:
            raise ValueError(f"option {option!r} is not taken by any of: {', '.join(chosen)} "
                             f"(see --help-method NAME)")
        for m in takers:
            out.setdefault(m, {})[option] = value
    return out


@app.command()
def adapt(
    method: str | None = typer.Option(
        None, "--method", "-m", help="comma-separated method names, or 'all' (see --list)"
    ),
    setting: str = typer.Option(
        "continual", help="continual | reset | mixed | gradual | correlated (Dirichlet, as the"
        " literature) | correlated-slots (our earlier order) | label-shift"
    ),
    severity: int = typer.Option(5, help="corruption severity 1..5"),
    batch_size: int = typer.Option(200, help="test batch size (1 for SAR's wild setting)"),
    limit: int | None = typer.Option(None, help="images per domain (default: all 10,000)"),
    model: str = typer.Option("resnet-bn", help="source model: resnet-bn | resnet-gn"),
    seed: int = typer.Option(0, help="seed of the stream, the corruptions and the methods"),
    domains: str | None = typer.Option(
        None, help="comma-separated corruptions (default: the 15 standard ones, CoTTA order)"
    ),
    guard: bool = typer.Option(False, "--guard", help="wrap every method in a CollapseGuard"),
    guard_horizon: int = typer.Option(
        5000, help="guard: images over which one class may dominate the predictions"
    ),
    imbalance_ratio: float = typer.Option(500_000.0, help="label-shift setting: SAR's IR"),
    delta: float | None = typer.Option(
        None, help="correlated settings: Dirichlet delta (default: sorted by label)"
    ),
    source_images: int = typer.Option(
        2000, help="clean train images for methods that need source data"
    ),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's own)"),
    out: str | None = typer.Option(None, help="output directory (results.json/.md, heatmap.png)"),
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="method option KEY=VALUE or METHOD.KEY=VALUE (repeatable)"),
    ] = None,
    list_: bool = typer.Option(False, "--list", help="print the method names, one per line"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="print the plan and a time estimate (a short probe); no run"
    ),
    help_method: str | None = typer.Option(
        None, help="print a method's options, defaults and paper, and exit"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ray: str | None = typer.Option(None, help=RAY_HELP + " (one task per method)"),
    ray_tasks: int | None = typer.Option(None, help=RAY_TASKS_HELP),
) -> None:
    """Run test-time adaptation methods on a CIFAR-10-C stream; resumable (per domain)."""
    from testtime.adapt import ADAPT_METHODS

    if list_:
        for name in ADAPT_METHODS.names():
            typer.echo(name)
        return
    if help_method is not None:
        typer.echo(method_help(help_method), nl=False)
        return
    if not method:
        raise ValueError("give --method (comma-separated names or 'all'; see --list)")
    if out is None and not dry_run:
        raise ValueError("give --out DIR for the results")
    names = (
        ADAPT_METHODS.names()
        if method == "all"
        else [m.strip() for m in method.split(",") if m.strip()]
    )

    import torch

    from testtime.adapt.benchmark import BenchConfig, run_benchmark

    if threads:
        torch.set_num_threads(threads)
    config = BenchConfig(
        methods=names, setting=setting, severity=severity, batch_size=batch_size, limit=limit,
        model=model, seed=seed, guard=guard,
        guard_options={"horizon": guard_horizon} if guard else {}, imbalance_ratio=imbalance_ratio, delta=delta,
        source_images=source_images, device=device, method_options=method_options(option or [], names),
    )  # fmt: skip
    if domains:
        config.domains = [d.strip() for d in domains.split(",") if d.strip()]
        from testtime.data.corruptions import CORRUPTIONS

        for d in config.domains:
            CORRUPTIONS.get(d)  # unknown names list the valid ones
    if dry_run:
        from testtime.cli.adapt_plan import render_plan

        config.validate()
        typer.echo(render_plan(config), nl=False)
        return
    with optional_session(ray, tasks=ray_tasks):
        run_benchmark(config, out, progress=not quiet, log=typer.echo)
    typer.echo(f"results: {Path(out) / 'results.md'}")
