"""TTI's training comparison on the built-in web environment (Shen et al. 2025): online RL
with the multiplicative horizon curriculum against fixed short and fixed long horizons,
from the same start model and for the same steps; then greedy success vs the test-time
horizon of each trained model (and of the start model), 95% bootstrap CIs and paired CIs
(same seeds) against the fixed-long run.

Three phases, each resumable under --out (rerun to resume):

    teach   BFS demonstrations in the loop's own prompts (fitted to the model's context),
            then completion-only fine-tuning (the embedded model does not know the action
            format; RL from zero success has no signal)
    train   ``curriculum`` (multiplicative h_start -> h_end), ``fixed-short`` (h_start),
            ``fixed-long`` (h_end), same steps and rollouts
    eval    success vs horizon for start / taught / each trained model

    python benchmarks/agents_tti_rl.py teach --episodes 2000 --steps 3000
    python benchmarks/agents_tti_rl.py train --rl-steps 40
    python benchmarks/agents_tti_rl.py eval --episodes 50 --horizons 5,10,20,40

Results: benchmarks/results/agents_tti_rl-<phase>-<tag>.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from phases_common import fine_tune, settings, taught, write_table

from testtime.agents import ENVIRONMENTS, LoopOptions, paired_success, run_episodes, summarise
from testtime.agents.demos import demonstrations
from testtime.agents.learner import LearnerPolicy
from testtime.agents.tti_rl import TRAIN_SEEDS, TTIConfig, train_tti
from testtime.cli.scale import parse_options
from testtime.learn.policy import Policy

DEMO_SEEDS = 2 * TRAIN_SEEDS  # apart from RL training seeds and evaluation seeds 0..n-1


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def write(phase: str, args: argparse.Namespace, rows: list[dict[str, Any]], header: str, line) -> None:
    write_table("agents_tti_rl", phase, args, settings(args), rows, header, line)


def phase_teach(args: argparse.Namespace, env: Any) -> None:
    from testtime.backends import embedded_model_dir

    start = args.model or embedded_model_dir()
    policy = Policy(start)
    seeds = range(DEMO_SEEDS, DEMO_SEEDS + args.episodes)
    rows = list(demonstrations(env, seeds, window=args.window, limit=policy.n_positions - args.step_tokens - 1,
                               count=lambda text: len(policy.encode_prompt(text))))
    row = {"episodes": args.episodes, **fine_tune(args, [(r["prompt"], r["completion"]) for r in rows])}
    write("teach", args, [row], "| demo episodes | pairs | steps | held-out NLL before | after | wall s |",
          lambda r: f"| {r['episodes']} | {r['pairs']} | {r['steps']} | {r['nll_before']:.3f} | "
                    f"{r['nll_after']:.3f} | {r['wall_s']:.0f} |")


def runs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    common = {"steps": args.rl_steps, "tasks_per_step": args.tasks_per_step, "group": args.group,
              "h_start": args.h_start, "h_end": args.h_end, "stage_steps": args.stage_steps,
              "step_tokens": args.step_tokens, "window": args.window, "eval_episodes": args.eval_episodes,
              "eval_horizon": args.h_end, "lr": args.rl_lr}
    return {"curriculum": {**common, "schedule": "multiplicative"},
            "fixed-short": {**common, "schedule": "fixed", "h_end": args.h_start},
            "fixed-long": {**common, "schedule": "fixed"}}


def phase_train(args: argparse.Namespace, env: Any) -> None:
    rows = []
    for name, options in runs(args).items():
        t0 = time.monotonic()
        m = train_tti(env, taught(args), args.out / "train" / name, TTIConfig(**options),
                      show_progress=not args.quiet)
        rows.append({"run": name, "before": m["before"]["success"], "after": m["after"]["success"],
                     "ci_low": m["after"]["ci_low"], "ci_high": m["after"]["ci_high"],
                     "steps": m["after"]["steps"], "train_wall_s": m["train_wall_s"]})
        print(f"{name}: {rows[-1]['before']:.3f} -> {rows[-1]['after']:.3f} ({time.monotonic() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    write("train", args, rows, f"| run | success before (H={args.h_end}) | after [95% CI] | steps | train s |",
          lambda r: f"| {r['run']} | {r['before']:.3f} | {r['after']:.3f} [{r['ci_low']:.3f}, "
                    f"{r['ci_high']:.3f}] | {r['steps']:.1f} | {r['train_wall_s']:.0f} |")


def phase_eval(args: argparse.Namespace, env: Any) -> None:
    models = {"taught": taught(args), **{n: args.out / "train" / n / "model" for n in runs(args)}}
    seeds, rows, by = list(range(args.episodes)), [], {}
    for name, path in models.items():
        if not path.exists():
            print(f"skipping {name}: no model at {path}", file=sys.stderr)
            continue
        actor = LearnerPolicy(Policy(path), step_tokens=args.step_tokens, temperature=0.0, window=args.window)
        for h in args.horizons:
            eps = run_episodes(env, actor, seeds, LoopOptions(horizon=h), args.out / "eval" / f"{name}-h{h}")
            by[name, h] = eps
            rows.append({"model": name, "horizon": h, **summarise(eps)})
            print(f"{name} H={h}: {rows[-1]['success']:.3f}", flush=True)
    for r in rows:
        if ("fixed-long", r["horizon"]) in by and r["model"] != "fixed-long":
            r["diff"], r["diff_low"], r["diff_high"] = paired_success(by[r["model"], r["horizon"]],
                                                                      by["fixed-long", r["horizon"]])
    write("eval", args, rows, "| model | horizon | success [95% CI] | vs fixed-long (paired) | steps | "
          "invalid steps |",
          lambda r: f"| {r['model']} | {r['horizon']} | {r['success']:.3f} [{r['ci_low']:.3f}, "
                    f"{r['ci_high']:.3f}] | " + (f"{r['diff']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]"
                                                  if "diff" in r else "—") +
                    f" | {r['steps']:.1f} | {r['invalid_steps']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("teach", "train", "eval"))
    parser.add_argument("--env", default="web")
    parser.add_argument("--env-option", action="append", default=None)
    parser.add_argument("--model", type=Path, default=None,
                        help="start model (teach: default the embedded one; others: OUT/teach/model)")
    parser.add_argument("--out", type=Path, default=Path("runs/agents-tti-rl"))
    parser.add_argument("--episodes", type=int, default=50, help="teach: demo episodes; eval: episodes")
    parser.add_argument("--steps", type=int, default=3000, help="teach: optimizer steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--rl-steps", type=int, default=40)
    parser.add_argument("--tasks-per-step", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--h-start", type=int, default=5)
    parser.add_argument("--h-end", type=int, default=20)
    parser.add_argument("--stage-steps", type=int, default=8)
    parser.add_argument("--rl-lr", type=float, default=1e-4)
    parser.add_argument("--eval-episodes", type=int, default=20, help="train: episodes of its own evaluation")
    parser.add_argument("--horizons", type=ints, default=[5, 10, 20, 40])
    parser.add_argument("--step-tokens", type=int, default=48)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--tag", default="embedded")
    parser.add_argument("--note", default="", help="a line for the results file (what to read it as)")
    args = parser.parse_args()
    env = ENVIRONMENTS.create(args.env, **parse_options(args.env_option))
    {"teach": phase_teach, "train": phase_train, "eval": phase_eval}[args.phase](args, env)


if __name__ == "__main__":
    main()
