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


@agent_app.command("demos")
def demos_command(
    env: Annotated[str, Argument(help="environment name (web)")],
    out: Annotated[Path, Option(help="JSONL file of {seed, step, prompt, completion}")],
    episodes: Annotated[int, Option(help="episodes (seeds seed..seed+N-1)")] = 100,
    seed: Annotated[int, Option(help="first seed (keep them apart from evaluation seeds)")] = 10_000,
    env_option: Annotated[list[str] | None, Option(help="environment knob KEY=VALUE")] = None,
    fit_to: Annotated[str | None, Option(help="a backend (embedded, a model directory) whose "
                                              "tokenizer and context the prompts are fitted to")
                      ] = None,
    step_tokens: Annotated[int, Option(help="room left for the completion when fitting")] = 64,
    window: Annotated[int, Option(help="past turns shown in the prompt")] = 4,
) -> None:
    """Write the BFS reference policy's steps on ENV as (prompt, completion) pairs in the
    agent loop's own prompt format: data to teach a model the action format."""
    from testtime.agents import ENVIRONMENTS
    from testtime.agents.demos import demonstrations
    from testtime.cli.scale import parse_options
    from testtime.store import atomic_write_text

    environment = ENVIRONMENTS.create(env, **parse_options(env_option))
    limit = count = None
    if fit_to is not None:
        from testtime.backends import get_generator

        generator = get_generator(fit_to)
        context = getattr(generator, "n_positions", None)
        if context is None:
            raise ValueError(f"backend {fit_to!r} does not say its context; fit to a local model")
        limit, count = context - step_tokens - 1, generator.count_tokens
    rows = list(demonstrations(environment, range(seed, seed + episodes), window=window,
                               limit=limit, count=count))
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} steps from {len({r['seed'] for r in rows})} solved episodes; {out}")


@agent_app.command("train")
def train_command(
    env: Annotated[str, Argument(help="environment name (web)")],
    model: Annotated[Path | None, Option(help="starting GPT-2 directory (default: the embedded "
                                              "TinyReasoner; never written)")] = None,
    env_option: Annotated[list[str] | None, Option(help="environment knob KEY=VALUE")] = None,
    option: Annotated[list[str] | None, Option(
        "--option", "-o", help="TTI option KEY=VALUE (repeatable): steps, tasks_per_step, group, "
        "schedule (multiplicative|additive|fixed), h_start, h_end, stage_steps, factor, increment, "
        "advantage (group|filtered), step_tokens, window, temperature, lr, micro_batch, "
        "eval_episodes, eval_horizon, seed")] = None,
    threads: Annotated[int | None, Option(help="torch CPU threads (default: torch's own)")] = None,
    quiet: Annotated[bool, Option(help="no progress bar")] = False,
    out: Annotated[Path, Option(help="run directory (rerun the same command to resume)")] = Path(
        "runs/agent-tti"),
) -> None:
    """TTI: curriculum-based online RL that grows the rollout horizon (Shen et al. 2025);
    evaluates greedy success before and after; metrics.json and model/ go to --out."""
    import torch

    from testtime.agents import ENVIRONMENTS
    from testtime.agents.tti_rl import TTIConfig, train_tti
    from testtime.backends import embedded_model_dir
    from testtime.cli.scale import parse_options
    from testtime.learn.base import build_config

    cfg = build_config(TTIConfig, {}, parse_options(option), "agent train")
    environment = ENVIRONMENTS.create(env, **parse_options(env_option))
    if threads is not None:
        torch.set_num_threads(threads)
    metrics = train_tti(environment, model if model is not None else embedded_model_dir(), out, cfg,
                        show_progress=not quiet)
    before, after = metrics["before"], metrics["after"]
    print(f"success at horizon {cfg.eval_horizon}: {before['success']:.3f} -> {after['success']:.3f} "
          f"[{after['ci_low']:.3f}, {after['ci_high']:.3f}] over {after['episodes']} episodes; "
          f"{metrics['steps_done']} steps; {out / 'metrics.json'}")


@agent_app.command("teach")
def teach_command(
    data: Annotated[Path, Argument(help="JSONL of {prompt, completion} (testtime agent demos)")],
    model: Annotated[Path | None, Option(help="starting GPT-2 directory (default: the embedded "
                                              "TinyReasoner; never written)")] = None,
    option: Annotated[list[str] | None, Option(
        "--option", "-o", help="option KEY=VALUE: steps, batch_size, lr, grad_clip, eval_pairs, "
        "checkpoint_every, seed")] = None,
    threads: Annotated[int | None, Option(help="torch CPU threads (default: torch's own)")] = None,
    quiet: Annotated[bool, Option(help="no progress bar")] = False,
    out: Annotated[Path, Option(help="run directory (rerun to resume); the model goes to OUT/model")
                   ] = Path("runs/agent-teach"),
) -> None:
    """Teach a model the action format: completion-only fine-tuning on demonstrations."""
    import torch

    from testtime.backends import embedded_model_dir
    from testtime.cli.scale import parse_options
    from testtime.learn.base import build_config
    from testtime.learn.sft import SFTConfig, teach

    pairs = []
    for k, line in enumerate(data.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not {"prompt", "completion"} <= set(row):
            raise ValueError(f"{data}:{k}: need an object with 'prompt' and 'completion'")
        pairs.append((row["prompt"], row["completion"]))
    cfg = build_config(SFTConfig, {}, parse_options(option), "agent teach")
    if threads is not None:
        torch.set_num_threads(threads)
    metrics = teach(model if model is not None else embedded_model_dir(), pairs, out, cfg,
                    show_progress=not quiet)
    print(f"held-out NLL {metrics['before']['nll']:.3f} -> {metrics['after']['nll']:.3f} "
          f"({metrics['pairs']} pairs, {metrics['steps_done']} steps); model: {out / 'model'}")
