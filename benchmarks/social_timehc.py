"""TimeHC-RL's comparison on the generated ``social`` task: cognitive modes and temporal
rewards (``timehc-rl``) against System-2 RL (``system2-rl``), System-1 RL and the
test-time interventions (prompting a mode, majority voting), on the embedded GPT-2.

Three phases, each resumable under --out (rerun to resume):

    teach          fine-tune the start model on reference responses in all three modes
                   (one mode drawn per problem; the generated training split), so it can
                   follow the formats (the paper starts from an instruction-tuned model)
    interventions  the taught model at test time: each mode forced by its mode line, or
                   left to the model (adaptive); pass@1 and majority@k, with tokens per problem
    train          timehc-rl, timehc-rl without the temporal reward, system2-rl, system1-rl
                   from the taught model, same steps; before/after, rollout tokens, paired
                   (same problems) CIs of each method's pass@1 against system2-rl

    python benchmarks/social_timehc.py teach --levels 0-1 --steps 2000
    python benchmarks/social_timehc.py interventions --levels 0-1 --problems 100
    python benchmarks/social_timehc.py train --levels 0-1 --problems 100 --rl-steps 60

Results: benchmarks/results/social_timehc-<phase>-<tag>.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from phases_common import fine_tune, settings, taught, write_table

from testtime.learn import METHODS, LearnRequest
from testtime.learn.cognitive_modes import MODES, format_ok, mode_line, mode_shares, mode_solution
from testtime.learn.common import (
    TEST_SEED,
    TRAIN_SEED,
    key_correct,
    majority,
    make_problems,
    parse_split,
    vote_keys,
)
from testtime.learn.policy import Policy
from testtime.scale.common import derive_seed
from testtime.scale.summary import bootstrap_ci
from testtime.tasks import get_task
from testtime.tasks.labels import grading

METHOD_RUNS = (("timehc-rl", {}), ("timehc-rl", {"temporal": False}), ("system2-rl", {}),
               ("system1-rl", {}))


def write(phase: str, args: argparse.Namespace, config: dict[str, Any], rows: list[dict[str, Any]],
          header: str, line) -> None:
    write_table("social_timehc", phase, args, config, rows, header, line)


def phase_teach(args: argparse.Namespace) -> None:
    task, levels = get_task("social"), parse_split(args.levels)
    rng = random.Random(args.seed)
    problems = make_problems(task, levels, args.pairs, TRAIN_SEED)
    row = fine_tune(args, [(p.prompt, mode_solution(task, p, rng.choice(MODES))) for p in problems])
    write("teach", args, {"levels": levels, **vars_of(args)}, [row],
          "| pairs | steps | held-out NLL before | after | wall s |",
          lambda r: f"| {r['pairs']} | {r['steps']} | {r['nll_before']:.3f} | {r['nll_after']:.3f} | "
                    f"{r['wall_s']:.0f} |")


def phase_interventions(args: argparse.Namespace) -> None:
    task, levels = get_task("social"), parse_split(args.levels)
    policy = Policy(taught(args))
    rows = []
    for level in levels:
        problems = task.generate(args.problems, level, TEST_SEED)
        for mode in ("adaptive", *MODES):
            prefix = "" if mode == "adaptive" else mode_line(mode)
            ids = [policy.encode_prompt(p.prompt + prefix) for p in problems]
            out, usage = policy.rollouts(ids, max(args.k), temperature=args.temperature,
                                         max_tokens=args.max_tokens, seed=derive_seed(args.seed, mode, level))
            texts = [[prefix + r.text for r in row] for row in out]
            with grading():
                ok = [[task.is_correct(p, t) for t in row] for p, row in zip(problems, texts, strict=True)]
            tokens = usage.completion_tokens / (len(problems) * max(args.k))
            flat = [t for row in texts for t in row]
            row = {"level": level, "mode": mode, "pass@1": float(np.mean(ok)), "tokens_per_sample": tokens,
                   "format": float(np.mean([format_ok(t) for t in flat])),
                   **mode_shares(flat, [c for r in ok for c in r])}
            for k in args.k:
                row[f"maj@{k}"] = float(np.mean([key_correct(task, p, majority(vote_keys(task, p, r[:k]))[0])
                                                 for p, r in zip(problems, texts, strict=True)]))
            rows.append(row)
            print(f"level {level} {mode:10s} pass@1 {row['pass@1']:.3f} " +
                  " ".join(f"maj@{k} {row[f'maj@{k}']:.3f}" for k in args.k) +
                  f" {tokens:.0f} tokens/sample", flush=True)
    majs = " | ".join(f"maj@{k}" for k in args.k)
    write("interventions", args, vars_of(args), rows,
          f"| level | mode | pass@1 | {majs} | tokens / sample | format ok | deliberate share |",
          lambda r: f"| {r['level']} | {r['mode']} | {r['pass@1']:.3f} | " +
                    " | ".join(f"{r[f'maj@{k}']:.3f}" for k in args.k) +
                    f" | {r['tokens_per_sample']:.0f} | {r['format']:.2f} | {r['mode_deliberate']:.2f} |")


def phase_train(args: argparse.Namespace) -> None:
    task = get_task("social")
    levels = parse_split(args.levels)
    problems = make_problems(task, levels, args.problems, TEST_SEED)
    model = taught(args)
    options = {"steps": args.rl_steps, "prompts_per_step": args.prompts_per_step, "n_samples": args.group,
               "max_tokens": args.max_tokens, "eval_samples": args.eval_samples, "lr": args.rl_lr}
    results = {}
    for method, extra in METHOD_RUNS:
        name = method + ("-no-temporal" if extra.get("temporal") is False else "")
        start = time.monotonic()
        request = LearnRequest(method, task, args.levels, problems, args.out / "train" / name, model,
                               seed=args.seed, options={**options, **extra}, label_free=True,
                               show_progress=not args.quiet)
        metrics = METHODS.create(method, request)
        results[name] = metrics
        print(f"{name}: pass@1 {metrics['before']['pass@1']:.3f} -> {metrics['after']['pass@1']:.3f} "
              f"({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    n = args.eval_samples
    base = np.array(results["system2-rl"]["after"]["correct"]) / n
    rows = []
    for name, m in results.items():
        after = np.array(m["after"]["correct"]) / n
        low, high = bootstrap_ci(after - base)
        rows.append({"method": name, "before": m["before"]["pass@1"], "after": m["after"]["pass@1"],
                     f"maj@{n}": m["after"][f"maj@{n}"], "diff": float(np.mean(after - base)),
                     "diff_low": low, "diff_high": high, "rollout_tokens": m["rollout_tokens"],
                     "deliberate": m["after"]["mode_deliberate"], "intuition": m["after"]["mode_intuition"],
                     "format": m["after"]["format"], "train_wall_s": m["train_wall_s"]})
    write("train", args, {**vars_of(args), "options": options}, rows,
          f"| method | pass@1 before | after | maj@{n} | vs system2-rl (paired) | rollout tokens | "
          "deliberate | intuition | format ok | train s |",
          lambda r: f"| {r['method']} | {r['before']:.3f} | {r['after']:.3f} | {r[f'maj@{n}']:.3f} | "
                    f"{r['diff']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}] | "
                    f"{r['rollout_tokens']:.0f} | {r['deliberate']:.2f} | {r['intuition']:.2f} | "
                    f"{r['format']:.2f} | {r['train_wall_s']:.0f} |")


def vars_of(args: argparse.Namespace) -> dict[str, Any]:
    return settings(args, drop=("phase",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("teach", "interventions", "train"))
    parser.add_argument("--levels", default="0-1", help="belief orders (0: temporal questions)")
    parser.add_argument("--model", type=Path, default=None,
                        help="start model (teach: default the embedded one; others: OUT/teach/model)")
    parser.add_argument("--out", type=Path, default=Path("runs/social-timehc"))
    parser.add_argument("--pairs", type=int, default=4000, help="teach: training responses")
    parser.add_argument("--steps", type=int, default=2000, help="teach: optimizer steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--problems", type=int, default=100, help="held-out problems")
    parser.add_argument("--k", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--rl-steps", type=int, default=60)
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--rl-lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--tag", default="embedded")
    parser.add_argument("--note", default="", help="a line for the results file (what to read it as)")
    args = parser.parse_args()
    {"teach": phase_teach, "interventions": phase_interventions, "train": phase_train}[args.phase](args)


if __name__ == "__main__":
    main()
