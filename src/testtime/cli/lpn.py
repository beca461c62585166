"""``testtime learn lpn``: train the Latent Program Network on the procedural grid
benchmark (resumable), measure its test-time search in and out of distribution, export
its weights with a model card (thin wrapper over :mod:`testtime.programs.lpn`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

CONFIGS = ("TrainConfig", "LPNConfig", "EvalConfig")


def _kinds() -> dict[str, type]:
    from testtime.programs.lpn.evaluate import EvalConfig
    from testtime.programs.lpn.model import LPNConfig
    from testtime.programs.lpn.train import TrainConfig

    return {"TrainConfig": TrainConfig, "LPNConfig": LPNConfig, "EvalConfig": EvalConfig}


def lpn_help() -> str:
    """Every option of ``learn lpn`` with its default, and the paper."""
    from testtime.cli.describe import config_options, paper_of, render
    from testtime.programs.lpn import train

    options = [o for kind in _kinds().values() for o in config_options(kind) if o.name != "seed"]
    return render("learn method lpn", paper_of(train), options,
                  "--KEY VALUE or -o KEY=VALUE after lpn; --weights DIR (or shipped): evaluate "
                  "those weights, no training", {"seed": "set by --seed"})


def build_configs(options: dict[str, Any], seed: int) -> dict[str, Any]:
    """The three settings of a run from ``--KEY VALUE`` options (unknown keys: an error)."""
    kinds = _kinds()
    names = {k: {f.name for f in dataclasses.fields(kind)} for k, kind in kinds.items()}
    valid = set().union(*names.values()) - {"seed"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"lpn has no option {', '.join(map(repr, unknown))} (seed: --seed); "
                         f"valid: {', '.join(sorted(valid))}")
    chosen = {k: {n: v for n, v in options.items() if n in names[k]} for k in kinds}
    chosen["TrainConfig"]["seed"] = seed
    return {k: kinds[k](**chosen[k]) for k in kinds}


def learn_lpn(pairs: list[str], out: Path | None, *, seed: int, threads: int | None,
              quiet: bool, dry_run: bool) -> None:
    """Train (or resume) into ``out``, evaluate every search cell (resumable), export
    ``out/weights`` and write ``out/report.md``; with ``--weights DIR`` (or
    ``shipped``) only evaluate those weights."""
    from testtime.cli.scale import parse_options

    options = parse_options(pairs)
    weights = options.pop("weights", None)
    configs = build_configs(options, seed)
    if weights is not None and set(options) - {f.name for f in dataclasses.fields(configs["EvalConfig"])}:
        raise ValueError("--weights evaluates given weights: only the evaluation options apply")
    train_cfg, model_cfg, eval_cfg = (configs[k] for k in CONFIGS)
    if dry_run:
        typer.echo(plan(out, configs), nl=False)
        return
    if out is None:
        raise ValueError("give --out DIR for the checkpoint, weights and report")
    import torch

    from testtime.programs.lpn.evaluate import evaluate
    from testtime.programs.lpn.export import SHIPPED, export, load_lpn
    from testtime.programs.lpn.report import table, write_report

    if threads is not None:
        torch.set_num_threads(threads)
    if weights is None:
        model, log, tag = _train(out, train_cfg, model_cfg, quiet)
    else:
        import hashlib

        folder = SHIPPED if weights == "shipped" else Path(str(weights))
        model, log = load_lpn(folder), []
        tag = {"weights": hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()}
    with _bar(quiet) as bar:
        job = bar.add_task("lpn search", total=len(eval_cfg.cells()), note="")

        def cell(row: Any) -> None:
            bar.update(job, advance=1, note=f"{row.split} {row.mode}@{row.steps}: {row.accuracy:.3f}")

        rows = evaluate(model.eval(), out / "eval.json", eval_cfg, tag, on_row=cell)
    if weights is None:
        export(model, out / "weights", train_cfg, log, rows, eval_cfg, threads or torch.get_num_threads())
    report = write_report(out, rows, log, eval_cfg.tasks, str(folder) if weights is not None else "")
    typer.echo("\n".join(table(rows)))
    typer.echo(f"report {report}" + ("" if weights is not None else
               f"; weights {out / 'weights'} (ship: copy the folder to {SHIPPED})"))


def _train(out: Path, train_cfg: Any, model_cfg: Any, quiet: bool) -> tuple[Any, list[dict], dict]:
    """The trained (or resumed) model, its log, and the tag its evaluation is kept under."""
    from testtime.programs.lpn.train import RESUMABLE, train

    with _bar(quiet) as bar:
        job = bar.add_task("lpn train", total=train_cfg.steps, note="")

        def step(row: dict) -> None:
            bar.update(job, completed=row["step"], note=f"loss {row['loss']:.3f} recon {row['recon']:.3f}")

        model, log = train(out, train_cfg, model_cfg, on_step=step)
    tag = {"trained_steps": len(log), "model": dataclasses.asdict(model_cfg),
           "training": {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in RESUMABLE}}
    return model, log, tag


def _bar(quiet: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from testtime.progress import make_progress

    return make_progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("{task.fields[note]}"), disable=quiet)


def plan(out: Path | None, configs: dict[str, Any]) -> str:
    lines = ["plan: lpn on the procedural grid benchmark"]
    for name in CONFIGS:
        settings = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(configs[name]).items())
        lines.append(f"  {name}: {settings}")
    cells = configs["EvalConfig"].cells()
    lines.append(f"  evaluation: {len(cells)} cells (split x mode x steps) of "
                 f"{configs['EvalConfig'].tasks} tasks")
    if out is not None and (out / "checkpoint.pt").exists():
        lines.append(f"  {out} has a checkpoint: the run resumes from it (or refuses other settings)")
    return "\n".join(lines) + "\n"
