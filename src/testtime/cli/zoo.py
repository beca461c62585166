"""``testtime zoo``: the embedded models (``zoo list``, ``zoo train <name>``)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from testtime.cli.main import app
from testtime.registry import UnknownName
from testtime.zoo import TRAINERS, WEIGHTS_DIR

zoo_app = typer.Typer(no_args_is_help=True, help="Embedded models: list and train them.")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def list_models() -> None:
    """Trainable models and the shipped weight directories."""
    for name in TRAINERS.names():
        typer.echo(f"trainable: {name}")
    for path in sorted(WEIGHTS_DIR.glob("*/config.json")):
        typer.echo(f"shipped:   {path.parent}")


@zoo_app.command()
def train(
    name: Annotated[str, typer.Argument(help="model to train, e.g. reasoner")],
    steps: Annotated[int | None, typer.Option(help="optimizer steps; epochs for resnet-bn/-gn (default: the model's own)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the initialisation and the data stream")] = 0,
    out: Annotated[Path | None, typer.Option(help="output directory (default runs/zoo/<name>)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from the checkpoint in --out")] = False,
    threads: Annotated[int, typer.Option(help="CPU threads for torch")] = 1,
    policy: Annotated[Path | None, typer.Option(help="prm, prm2: the policy to sample and start from (default: embedded)")] = None,
) -> None:
    """Train an embedded model from scratch into a Hugging Face directory."""
    try:
        trainer = TRAINERS.get(name)
    except UnknownName as err:
        raise typer.BadParameter(str(err)) from None
    options = {} if policy is None else {"policy": policy}
    if options and "policy" not in inspect.signature(trainer).parameters:
        takes = [n for n in TRAINERS.names() if "policy" in inspect.signature(TRAINERS.get(n)).parameters]
        raise typer.BadParameter(f"--policy applies to {', '.join(takes)}, not {name}")
    path = out or Path("runs/zoo") / name
    try:
        info = trainer(path, steps, seed, resume, threads, **options)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise typer.BadParameter(str(err)) from None
    summary = {k: v for k, v in info.items() if isinstance(v, int | float | str)}
    typer.echo(f"trained {name} into {path}: {json.dumps(summary)}")


@zoo_app.command("export")
def export(
    model: Annotated[str, typer.Argument(help="shipped model name (tiny-reasoner) or a GPT-2 LM directory")],
    out: Annotated[Path, typer.Option(help="output file, e.g. tiny-reasoner.gguf")],
    format: Annotated[str, typer.Option("--format", help="export format (gguf)")] = "gguf",
    dtype: Annotated[str, typer.Option(help="weight dtype: f32 or f16")] = "f32",
) -> None:
    """Export a causal LM for another engine (GGUF: llama.cpp), checked by reading it back."""
    if format != "gguf":
        raise ValueError(f"unknown export format {format!r}; valid: gguf")
    from testtime.zoo.gguf_export import export_gguf, verify_gguf

    source = WEIGHTS_DIR / model if (WEIGHTS_DIR / model / "config.json").is_file() else Path(model)
    info = export_gguf(source, out, dtype=dtype)
    info["max_abs_diff"] = verify_gguf(source, out)
    typer.echo(f"exported {source} to {out}: {json.dumps(info)}")


@zoo_app.command()
def prime(
    model: Annotated[str, typer.Option(help="'embedded' (TinyReasoner), 'scratch' / 'scratch-l' (an untrained TinyReasoner / -L: the recipe from step 0) or a local Hugging Face causal-LM directory")] = "embedded",
    behaviours: Annotated[str | None, typer.Option(help="mix, e.g. verify=0.3,backtrack=0.7 (default: TinyReasoner 2's)")] = None,
    task: Annotated[str | None, typer.Option(help="one task family with a step checker (default: arith 80%, countdown, mul)")] = None,
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 1600,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 2e-4,
    eval_every: Annotated[int, typer.Option(help="steps between validation + checkpoint")] = 160,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters (peft) instead of all weights; merged on export")] = False,
    window: Annotated[str, typer.Option(help="checkpoint selection: best mean validation with plain pass@1 in LO,HI")] = "0.25,0.75",
    name: Annotated[str, typer.Option(help="the model card's title")] = "Primed model",
    seed: Annotated[int, typer.Option(help="seed of the trace stream and the initialisation")] = 0,
    out: Annotated[Path, typer.Option(help="output directory (never a shipped model's)")] = Path("runs/zoo/primed"),
    resume: Annotated[bool, typer.Option(help="continue from the checkpoint in --out")] = False,
    threads: Annotated[int, typer.Option(help="CPU threads for torch")] = 1,
) -> None:
    """Fine-tune a model on cognitive-behaviour traces (verification, backtracking, subgoals,
    backward chaining, checking after wait, revision, in-context examples)."""
    from testtime.zoo.behaviours import step_task
    from testtime.zoo.prime import FAMILIES, PrimeConfig, parse_mix
    from testtime.zoo.prime import prime as run_prime

    try:
        mix = parse_mix(behaviours)
        families = dict(FAMILIES) if task is None else {step_task(task).name: (1.0, FAMILIES[task][1])}
        lo, hi = (float(x) for x in window.split(","))
        config = PrimeConfig(steps=steps, lr=lr, eval_every=eval_every, lora=lora, window=(lo, hi))
        info = run_prime(out, model, mix, families, config, seed, resume, threads, name=name)
    except (ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(f"primed {model} into {out}: selected step {info['selected']['step']}"
               f" (valid pass@1 {info['selected']['valid_pass1']:.3f}), {info['wall_s'] / 60:.1f} min")
