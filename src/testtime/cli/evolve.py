"""``testtime evolve``: evolve programs for an open problem (ThetaEvolve's loop, thin
wrapper over :mod:`testtime.programs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from typer import Argument, Option

from testtime.cli.main import app


@app.command("evolve")
def evolve_command(
    problem: Annotated[str | None, Argument(help="problem name (see --list)")] = None,
    backend: Annotated[
        str, Option(help="mutate (random mutation of the program's numbers, no model), "
                    "openai:<base_url>, vllm:<model>, embedded or a model directory")
    ] = "mutate",
    model: Annotated[str | None, Option(help="model name for openai/vllm backends")] = None,
    api_key_env: Annotated[str | None, Option(help="environment variable holding the API key")] = None,
    backend_option: Annotated[
        list[str] | None, Option(help="backend option KEY=VALUE (repeatable)")
    ] = None,
    generations: Annotated[int, Option(help="generations (rerun with more to extend a run)")] = 10,
    batch: Annotated[int, Option(help="programs proposed per generation (one batched call)")] = 8,
    out: Annotated[Path, Option(help="run directory (rerun the same command to resume)")] = Path(
        "runs/evolve"),
    seed: Annotated[int, Option(help="seed of selection and sampling")] = 0,
    temperature: Annotated[float, Option(help="sampling temperature")] = 0.8,
    max_tokens: Annotated[int, Option(help="tokens per proposed program")] = 2048,
    workers: Annotated[int, Option(help="sandbox runs in parallel")] = 1,
    islands: Annotated[int, Option(help="islands of the program database")] = 4,
    lazy_penalty: Annotated[
        int, Option(help="0 off, 1 child identical to its parent, 2 identical to any program")
    ] = 1,
    shaping: Annotated[bool, Option(help="ThetaEvolve's reward shaping (needed by --rl)")] = False,
    rl: Annotated[bool, Option(help="test-time RL: one GRPO step per generation on the rewards "
                                    "(backend embedded or a GPT-2 model directory)")] = False,
    rl_lr: Annotated[float, Option(help="learning rate of the RL step")] = 1e-4,
    wall_s: Annotated[float, Option(help="wall-clock seconds per candidate run")] = 30.0,
    memory_mb: Annotated[int, Option(help="address-space limit per candidate run (MB)")] = 2048,
    list_: Annotated[bool, Option("--list", help="print the problem names and exit")] = False,
) -> None:
    """Evolve programs for PROBLEM in a sandbox; writes state.json (resumable), best.py,
    curve.png, summary.json and report.md into --out."""
    from dataclasses import replace

    from testtime.programs.database import DatabaseConfig
    from testtime.programs.evolve import Evolution, EvolveConfig
    from testtime.programs.problems import PROBLEMS
    from testtime.programs.report import write_report
    from testtime.programs.sandbox import Limits

    if list_:
        for name in PROBLEMS.names():
            print(name)
        return
    if problem is None:
        raise ValueError("give a problem (e.g. testtime evolve circle-packing), or use --list")
    task = PROBLEMS.create(problem)
    limits = Limits(wall_s=wall_s, cpu_s=max(1, int(wall_s)), memory_mb=memory_mb)
    config = EvolveConfig(
        generations=generations, batch=batch, temperature=temperature, max_tokens=max_tokens,
        seed=seed, workers=workers, shaping=shaping,
        database=replace(DatabaseConfig(), num_islands=islands, lazy_penalty=lazy_penalty))
    generator = (_learner(backend, rl_lr) if rl else
                 _generator(backend, model, api_key_env, backend_option))
    result = Evolution(task, generator, out, config, limits).run()
    summary = write_report(task, out)
    print(f"best {problem} score {result.best.score:.10g} after {result.generations} generations "
          f"(baseline {summary['baseline_score']:.10g}, best known {task.best_known:g}); "
          f"{out / 'report.md'}, {out / 'best.py'}")


def _learner(backend: str, lr: float) -> Any:
    from testtime.backends import embedded_model_dir
    from testtime.programs.rl import PolicyLearner, RLConfig

    if backend in ("embedded", "tiny-reasoner"):
        return PolicyLearner(embedded_model_dir(), RLConfig(lr=lr))
    if Path(backend).expanduser().is_dir():
        return PolicyLearner(Path(backend).expanduser(), RLConfig(lr=lr))
    raise ValueError(f"--rl trains a local model: --backend embedded or a model directory, not {backend!r}")


def _generator(backend: str, model: str | None, api_key_env: str | None,
               pairs: list[str] | None) -> Any:
    from testtime.cli.scale import parse_options

    options = parse_options(pairs)
    if backend == "mutate":
        from testtime.programs.mutate import MutationGenerator

        return MutationGenerator(**options)
    from testtime.backends import get_generator

    if model is not None:
        options["model"] = model
    if api_key_env is not None:
        options["api_key_env"] = api_key_env
    return get_generator(backend, **options)
