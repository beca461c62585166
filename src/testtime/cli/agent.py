"""``testtime agent run ENV``: play episodes of a text environment with a policy (resumable)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import Argument, Option

from testtime.cli.main import app

agent_app = typer.Typer(no_args_is_help=True, help="Agents acting in text environments (TTI).")
app.add_typer(agent_app, name="agent")


@agent_app.command("run")
def run_command(
    env: Annotated[str, Argument(help="environment name (web)")],
    backend: Annotated[str, Option(help="bfs (the scripted reference policy, no model), "
                                        "embedded, openai:<base_url>, vllm:<model> or a model "
                                        "directory")] = "embedded",
    model: Annotated[str | None, Option(help="model name for openai/vllm backends")] = None,
    api_key_env: Annotated[str | None, Option(help="environment variable holding the API key")] = None,
    backend_option: Annotated[
        list[str] | None, Option(help="backend option KEY=VALUE (repeatable)")] = None,
    env_option: Annotated[
        list[str] | None, Option(help="environment knob KEY=VALUE, e.g. depth=3, distractors=2")
    ] = None,
    horizon: Annotated[int, Option(help="interaction steps per episode")] = 20,
    episodes: Annotated[int, Option(help="episodes (seeds seed..seed+N-1)")] = 10,
    seed: Annotated[int, Option(help="first episode seed")] = 0,
    step_tokens: Annotated[int, Option(help="reasoning tokens per step (the per-step budget)")] = 64,
    temperature: Annotated[float, Option(help="sampling temperature")] = 0.0,
    window: Annotated[int, Option(help="past turns shown in the prompt")] = 4,
    context: Annotated[int | None, Option(help="the model's context in tokens: prompts are fitted "
                                               "to it (default: the backend's, when it knows)")
                       ] = None,
    check_again: Annotated[int, Option(help="answers intercepted by a 'check again' cue")] = 0,
    announce: Annotated[bool, Option(help="show the steps left in the prompt")] = False,
    out: Annotated[Path, Option(help="run directory (rerun the same command to resume)")] = Path(
        "runs/agent"),
) -> None:
    """Play EPISODES episodes of ENV; episodes.jsonl and summary.json go to --out, the
    success rate with its 95% bootstrap CI to stdout, progress to stderr."""
    from testtime.agents import ENVIRONMENTS, BFSPolicy, GeneratorPolicy, LoopOptions
    from testtime.agents.runner import run_config, run_episodes, summarise
    from testtime.cli.scale import parse_options
    from testtime.store import atomic_write_json

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    environment = ENVIRONMENTS.create(env, **parse_options(env_option))
    options = LoopOptions(horizon=horizon, check_again=check_again, announce=announce)
    policy: Any
    if backend == "bfs":
        policy = BFSPolicy()
    else:
        from testtime.backends import get_generator
        from testtime.cluster import limit_upstream

        backend_options = parse_options(backend_option)
        if model is not None:
            backend_options["model"] = model
        if api_key_env is not None:
            backend_options["api_key_env"] = api_key_env
        policy = GeneratorPolicy(limit_upstream(get_generator(backend, **backend_options)),
                                 step_tokens=step_tokens, temperature=temperature, window=window,
                                 context=context)
    seeds = list(range(seed, seed + episodes))
    done = [0]

    def report(episode: Any, resumed: bool) -> None:
        done[0] += 1
        how = "stored" if resumed else f"{episode.ledger.steps} steps"
        print(f"agent {env}: episode {done[0]}/{episodes} seed {episode.seed}: "
              f"{'solved' if episode.success else 'failed'} ({how})", file=sys.stderr, flush=True)

    played = run_episodes(environment, policy, seeds, options, out, on_episode=report)
    summary = summarise(played)
    atomic_write_json(out / "summary.json", {"config": run_config(environment, policy, options),
                                              "summary": summary})
    print(json.dumps(summary))
    print(f"success {summary['success']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}] "
          f"over {len(played)} episodes, {summary['steps']:.1f} steps and "
          f"{summary['reasoning_tokens']:.0f} reasoning tokens per episode; {out / 'episodes.jsonl'}")
