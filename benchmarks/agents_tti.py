"""Thinking vs doing (TTI, Shen et al. 2025) on the built-in web environment: success vs
interaction horizon at a fixed per-step reasoning budget, success vs per-step budget at a
fixed horizon, and the two traded at an equal token cap (horizon × step tokens), plus the
"check again" cue; 95% bootstrap CIs over episodes and paired CIs (same seeds) against
each sweep's first setting. Runs on any backend; ``bfs`` is the scripted reference
policy (no tokens: only the horizon sweep means anything for it).

    python benchmarks/agents_tti.py --backend openai:http://localhost:8000/v1 --model M \\
        --episodes 50 --horizons 5,10,20,40 --step-tokens 16,32,64,128 --env-option depth=2

Every setting is a resumable run under --out/<setting>; rerun to resume.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from testtime.agents import (
    ENVIRONMENTS,
    BFSPolicy,
    GeneratorPolicy,
    LoopOptions,
    paired_success,
    run_episodes,
    summarise,
)
from testtime.cli.scale import parse_options
from testtime.store.atomic import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def settings(args: argparse.Namespace) -> list[tuple[str, int, int, int]]:
    """(sweep, horizon, step tokens, check-again cues), each sweep's baseline first."""
    h0, t0 = args.fixed_horizon, args.fixed_step_tokens
    rows = [("horizon", h, t0, 0) for h in args.horizons]
    if args.backend == "bfs":
        return rows + [("check-again", h0, t0, c) for c in [0, *args.check_again]]
    rows += [("thinking", h0, t, 0) for t in args.step_tokens]
    cap = h0 * t0  # the paper's comparison at equal total reasoning tokens
    rows += [("equal-cap", h, cap // h, 0) for h in args.horizons if cap // h >= 4]
    return rows + [("check-again", h0, t0, c) for c in [0, *args.check_again]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend-option", action="append", default=None)
    parser.add_argument("--env", default="web")
    parser.add_argument("--env-option", action="append", default=None)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--horizons", type=ints, default=[5, 10, 20, 40])
    parser.add_argument("--step-tokens", type=ints, default=[16, 32, 64, 128])
    parser.add_argument("--fixed-horizon", type=int, default=20)
    parser.add_argument("--fixed-step-tokens", type=int, default=64)
    parser.add_argument("--check-again", type=ints, default=[1])
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--context", type=int, default=None,
                        help="the model's context in tokens (prompts are fitted to it)")
    parser.add_argument("--tag", default=None, help="results file suffix (default: the backend)")
    parser.add_argument("--note", default="", help="a line for the results file (what to read it as)")
    parser.add_argument("--out", type=Path, default=Path("runs/agents-tti"))
    args = parser.parse_args()
    env_knobs = parse_options(args.env_option)
    generator = None
    if args.backend != "bfs":
        from testtime.backends import get_generator

        options = parse_options(args.backend_option)
        if args.model:
            options["model"] = args.model
        generator = get_generator(args.backend, **options)
    seeds = list(range(args.episodes))
    runs: dict[tuple[int, int, int], list[Any]] = {}
    rows, firsts = [], {}
    for sweep, horizon, step_tokens, cues in settings(args):
        key = (horizon, step_tokens, cues)
        if key not in runs:
            start = time.monotonic()
            policy = (BFSPolicy() if generator is None else GeneratorPolicy(
                generator, step_tokens=step_tokens, temperature=args.temperature, window=args.window,
                context=args.context))
            env = ENVIRONMENTS.create(args.env, **env_knobs)
            out = args.out / f"h{horizon}-t{step_tokens}-c{cues}"
            runs[key] = run_episodes(env, policy, seeds, LoopOptions(horizon, cues), out)
            print(f"h{horizon} t{step_tokens} c{cues}: {time.monotonic() - start:.1f} s",
                  file=sys.stderr, flush=True)
        row = {"sweep": sweep, "horizon": horizon, "step_tokens": step_tokens,
               "check_again": cues, "token_cap": horizon * step_tokens, **summarise(runs[key])}
        if sweep in firsts:  # paired (same seeds) against the sweep's first setting
            row["diff"], row["diff_low"], row["diff_high"] = paired_success(runs[key], runs[firsts[sweep]])
        firsts.setdefault(sweep, key)
        rows.append(row)
        print(f"{sweep:11s} H={horizon:3d} T={step_tokens:4d} cue={cues}: success "
              f"{row['success']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}], "
              f"{row['steps']:.1f} steps, {row['invalid_steps']:.1f} invalid, "
              f"{row['charged_tokens']:.0f} tokens", flush=True)
    tag = args.tag or args.backend.split(":")[0].replace("/", "_")
    config = {"note": args.note, "backend": args.backend, "model": args.model, "env": args.env,
              "env_options": env_knobs, "episodes": args.episodes, "temperature": args.temperature,
              "window": args.window, "threads": 1}
    atomic_write_json(RESULTS / f"agents_tti-{tag}.json", {"config": config, "rows": rows})
    lines = [f"# agents_tti ({args.backend}, {args.env} {env_knobs}, {args.episodes} episodes)", "",
             *([args.note, ""] if args.note else []),
             "| sweep | horizon | step tokens | check-again | success [95% CI] | vs first (paired) "
             "| steps | invalid steps | reasoning tokens | charged tokens |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = (f"{r['diff']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]"
                if "diff" in r else "—")
        lines.append(f"| {r['sweep']} | {r['horizon']} | {r['step_tokens']} | {r['check_again']} | "
                     f"{r['success']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {diff} | "
                     f"{r['steps']:.1f} | {r['invalid_steps']:.1f} | {r['reasoning_tokens']:.0f} | "
                     f"{r['charged_tokens']:.0f} |")
    atomic_write_text(RESULTS / f"agents_tti-{tag}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
