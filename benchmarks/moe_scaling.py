"""Test-time compute inside a mixture-of-experts model: Dynamic Experts Search and
expert rerouting (issue 16), on TinyReasoner-MoE or any local HF MoE directory.

    python benchmarks/moe_scaling.py [--backend tiny-reasoner-moe] [--levels 4,6,8]
        [--problems 50] [--max-n 16] [--coverage-samples 12] [--reroute-n 8]
    python benchmarks/moe_scaling.py --smoke   # a random tiny MoE, 2 problems: the pipeline only
    python benchmarks/moe_scaling.py --seed 1 --parts reroute --lr 0.2 --name moe_reroute_valid_lr0.2 \
        --runs runs/benchmarks/moe-valid-lr0.2   # calibrate rerouting on the validation seed

1. DES vs sampling (majority) at equal N, per difficulty: accuracy with a bootstrap CI,
   the paired difference to majority with its paired-bootstrap CI, generated tokens and
   policy FLOPs per problem (expert FLOPs at each path's count), at N a multiple of the
   counts. The default count range ``[d-1, d+1]`` around the model's default ``d`` has
   mean ``d``: FLOPs per token are then equal (``flops_per_token_ratio`` 1), so equal
   tokens are equal FLOPs; ``--k-min/--k-max`` move it (the ratios are reported). The
   harness charges the majority pool's whole prompt to every N (``flops`` includes it).
2. Complementary solution sets (Han et al. 2025, Fig. 1): per problem, ``m`` samples at
   each count; coverage (any correct) of each count alone vs the union of ``m/|K|``
   samples from every count (the same ``m`` samples), with the paired CI of union − best.
3. Step-level search with the shipped PRM (the paper's Table 2 setting): beam search at
   the default count vs DES beam (the root's N first steps split over the counts, every
   child inherits its parent's count), same N, width and verifier, label-free.
4. Rerouting (Su et al. 2025) alone (n = 1) and with majority@n vs the unadapted model
   from the same seeds, and its wall-time overhead (``testtime learn rerouting``).

Everything is resumable (run stores under ``--runs``); the summary goes to
``--results``/moe_scaling[_smoke].json. Grading reads the labels; no method does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scaling_common import RESULTS, RUNS, powers_of_two

from testtime.backends import get_generator
from testtime.backends.base import SamplingParams
from testtime.backends.experts import experts_info, with_experts
from testtime.learn.base import LearnRequest
from testtime.learn.common import make_problems
from testtime.learn.rerouting import rerouting
from testtime.scale.common import derive_seed
from testtime.scale.harness import scale
from testtime.scale.summary import bootstrap_ci
from testtime.store import atomic_write_json
from testtime.store.runstore import RunStore
from testtime.tasks import get_task
from testtime.tasks.labels import grading
from testtime.verifiers.base import get_verifier


def des_vs_sampling(task, generator, args, levels, counts) -> list[dict[str, Any]]:
    options = {"k_min": counts[0], "k_max": counts[-1], "temperature": args.temperature,
               "max_tokens": args.max_tokens}
    # N a multiple of the counts: every count gets N/|K| paths, so the mean count is the range's middle.
    budgets = [len(counts) * p for p in powers_of_two(max(1, args.max_n // len(counts)))]
    out = scale(task, generator, ["majority", "dynamic-experts"], budgets,
                args.runs / "des", difficulties=levels, limit=args.problems, seed=args.seed,
                options=options, backend=args.backend, baseline="majority", show_progress=False)
    keep = ("strategy", "n", "difficulty", "accuracy", "ci_low", "ci_high", "diff", "diff_low", "diff_high",
            "generated_tokens", "computed_tokens", "flops", "wall_s", "problems")
    rows = [{k: r.get(k) for k in keep} for r in out.rows]
    for r in rows:  # the pool baseline is charged its pool's whole prompt: compare per computed token too
        r["flops_per_token"] = r["flops"] / r["computed_tokens"] if r["flops"] and r["computed_tokens"] else None
    base = {(r["n"], r["difficulty"]): r for r in rows if r["strategy"] == "majority"}
    for r in rows:
        b = base.get((r["n"], r["difficulty"]))
        if r["strategy"] != "majority" and b and b["flops"] and b["generated_tokens"]:
            r["flops_ratio"] = r["flops"] / b["flops"]
            r["flops_per_token_ratio"] = r["flops_per_token"] / b["flops_per_token"]
            r["tokens_ratio"] = r["generated_tokens"] / b["generated_tokens"]
    return rows


def step_search(task, generator, args, levels, counts) -> list[dict[str, Any]]:
    """Beam search vs DES beam at one N with the PRM (label-free: the PRM never reads a label)."""
    options = {"mode": "beam", "k_min": counts[0], "k_max": counts[-1], "width": args.beam_width,
               "temperature": args.temperature, "max_tokens": args.max_tokens}
    out = scale(task, generator, ["beam", "dynamic-experts"], [args.beam_n], args.runs / "beam",
                verifier=get_verifier("prm", task), difficulties=levels, limit=args.beam_problems,
                seed=args.seed, options=options, backend=args.backend, baseline="beam",
                label_free=True, show_progress=False)
    keep = ("strategy", "n", "difficulty", "accuracy", "ci_low", "ci_high", "diff", "diff_low", "diff_high",
            "generated_tokens", "flops", "wall_s", "problems")
    return [{k: r.get(k) for k in keep} for r in out.rows]


def coverage(task, generator, args, levels, counts) -> list[dict[str, Any]]:
    """Per level: coverage of m samples at each count alone vs the union (m/|K| from each)."""
    m = args.coverage_samples
    if m % len(counts):
        raise SystemExit(f"--coverage-samples {m} must be a multiple of the {len(counts)} counts")
    store = RunStore(args.runs / "coverage", {"counts": counts, "m": m, "seed": args.seed,
                                               "max_tokens": args.max_tokens, "levels": levels,
                                               "problems": args.problems, "backend": args.backend})
    rows = []
    try:
        for level in levels:
            per: dict[str, list[float]] = {str(k): [] for k in counts} | {"union": []}
            for problem in task.generate(args.problems, level, seed=args.seed):
                key = f"{level}/{problem.id}"
                if key not in store:
                    hits = {}
                    for k in counts:
                        params = SamplingParams(n=m, temperature=args.temperature, max_tokens=args.max_tokens,
                                                seed=derive_seed(args.seed, "coverage", k))
                        texts = [c.text for c in with_experts(generator, k).generate([problem.prompt], params)
                                 .completions[0]]
                        with grading():
                            hits[str(k)] = [bool(task.is_correct(problem, t)) for t in texts]
                    store.put(key, hits)
                hits = store.get(key)
                for k in counts:
                    per[str(k)].append(float(any(hits[str(k)])))
                per["union"].append(float(any(h for k in counts for h in hits[str(k)][: m // len(counts)])))
            best = max((str(k) for k in counts), key=lambda k: np.mean(per[k]))
            diffs = np.array(per["union"]) - np.array(per[best])
            low, high = bootstrap_ci(diffs, seed=args.seed)
            rows.append({"difficulty": level, "samples": m, **{f"coverage_k{k}": float(np.mean(per[str(k)]))
                                                               for k in counts},
                         "coverage_union": float(np.mean(per["union"])), "best_single": int(best),
                         "union_minus_best": float(diffs.mean()), "ci_low": low, "ci_high": high})
    finally:
        store.close()
    return rows


def reroute(task, generator, args, levels, counts) -> list[dict[str, Any]]:
    """Rerouting alone (n = 1) and with majority@n against the same decoding loop unadapted."""
    model_dir, rows = Path(generator.inner.model_dir), []
    for n in sorted({1, args.reroute_n}):
        problems = make_problems(task, levels, args.problems * len(levels), args.seed)
        request = LearnRequest("rerouting", task, ",".join(map(str, levels)), problems,
                               args.runs / f"rerouting-n{n}", model_dir, seed=args.seed,
                               options={"n": n, "max_tokens": args.max_tokens, "every": args.every,
                                        "steps": args.steps, "lr": args.lr, "temperature": args.temperature},
                               show_progress=False, label_free=True)
        metrics = rerouting(request)
        rows.append({"n": n, "before": metrics["before"], "after": metrics["after"],
                     "paired_difference": metrics["paired_difference"],
                     "wall_overhead": metrics["wall_overhead"], "problems": metrics["problems"]})
    return rows


DIFF = ("diff", "diff_low", "diff_high")  # a row's paired difference to the baseline strategy


def _ci(r: dict[str, Any], mean: str, low: str, high: str) -> str:
    return "" if r.get(mean) is None else f"{r[mean]:+.3f} [{r[low]:+.2f}, {r[high]:+.2f}]"


def write_report(summary: dict[str, Any], path: Path) -> None:
    """``path``.md (the tables) and ``path``.png (accuracy vs generated tokens per level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = summary["model"]
    shown = {k: v for k, v in summary["settings"].items() if k not in ("runs", "results")}  # no local paths
    lines = [f"# MoE test-time compute: {m['architecture']}, {m['experts']} experts, default top-{m['default_k']}",
             "", f"Expert counts searched: {summary['counts']}; settings: `{shown}`", ""]
    if summary["des"]:
        lines += ["## DES vs sampling (majority), same N", "",
                  "| level | strategy | N | accuracy [95% CI] | DES − majority [paired CI] | tokens | FLOPs ratio | FLOPs/token ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['difficulty']} | {r['strategy']} | {r['n']} | {r['accuracy']:.3f} [{r['ci_low']:.2f}, "
                  f"{r['ci_high']:.2f}] | {_ci(r, *DIFF)} | {r['generated_tokens']:.0f} | "
                  f"{r.get('flops_ratio', 1.0):.2f} | {r.get('flops_per_token_ratio', 1.0):.2f} |" for r in summary["des"]]
    if summary["beam"]:
        lines += ["", "## Step-level search with the PRM (label-free), same N and width", "",
                  "| level | strategy | N | accuracy | DES − beam [paired CI] | tokens |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['difficulty']} | {r['strategy']} | {r['n']} | {r['accuracy']:.3f} | "
                  f"{_ci(r, *DIFF)} | {r['generated_tokens']:.0f} |" for r in summary["beam"]]
    if summary["coverage"]:
        ks = summary["counts"]
        lines += ["", "## Complementary solution sets: coverage of m samples", "",
                  "| level | m | " + " | ".join(f"k={k}" for k in ks) + " | union (m/|K| each) | union − best [CI] |",
                  "|---|---|" + "---|" * len(ks) + "---|---|"]
        lines += [f"| {r['difficulty']} | {r['samples']} | " + " | ".join(f"{r[f'coverage_k{k}']:.3f}" for k in ks)
                  + f" | {r['coverage_union']:.3f} | {_ci(r, 'union_minus_best', 'ci_low', 'ci_high')} |"
                  for r in summary["coverage"]]
    if summary["reroute"]:
        lines += ["", "## Expert rerouting vs the same decoding loop unadapted", "",
                  "| n | pass@1 before → after | paired diff [CI] | maj@n before → after | paired diff [CI] |"
                  " updates/request | wall overhead |", "|---|---|---|---|---|---|---|"]
        for r in summary["reroute"]:
            b, a, key = r["before"], r["after"], f"maj@{r['n']}"
            d = {k: f"{m:+.3f} [{lo:+.2f}, {hi:+.2f}]" for k, (m, lo, hi) in r["paired_difference"].items()}
            lines.append(f"| {r['n']} | {b['pass@1']:.3f} → {a['pass@1']:.3f} | {d['pass@1']} | {b[key]:.3f} → "
                         f"{a[key]:.3f} | {d[key]} | "
                         f"{a['mean_updates']:.2f} | {r['wall_overhead']:.2f}× |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    if summary["des"]:
        levels = sorted({r["difficulty"] for r in summary["des"]})
        fig, axes = plt.subplots(1, len(levels), figsize=(4 * len(levels), 3.2), squeeze=False)
        for ax, level in zip(axes[0], levels, strict=True):
            for strategy in ("majority", "dynamic-experts"):
                rows = [r for r in summary["des"] if r["difficulty"] == level and r["strategy"] == strategy]
                x = [r["generated_tokens"] for r in rows]
                ax.plot(x, [r["accuracy"] for r in rows], marker="o", label=strategy)
                ax.fill_between(x, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.15)
            ax.set(title=f"arith level {level}", xlabel="generated tokens / problem", ylabel="accuracy")
            ax.set_xscale("log")
        axes[0][0].legend()
        fig.tight_layout()
        fig.savefig(path.with_suffix(".png"), dpi=120)
        plt.close(fig)


PARTS = {"des": des_vs_sampling, "coverage": coverage, "beam": step_search, "reroute": reroute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="tiny-reasoner-moe", help="tiny-reasoner-moe or an MoE directory")
    parser.add_argument("--task", default="arith")
    parser.add_argument("--levels", default="4,6,8")
    parser.add_argument("--problems", type=int, default=50, help="per level")
    parser.add_argument("--max-n", type=int, default=16)
    parser.add_argument("--k-min", type=int, default=None)
    parser.add_argument("--k-max", type=int, default=None)
    parser.add_argument("--coverage-samples", type=int, default=12)
    parser.add_argument("--beam-n", type=int, default=6)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--beam-problems", type=int, default=20, help="per level, step-level search")
    parser.add_argument("--reroute-n", type=int, default=8)
    parser.add_argument("--every", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="rerouting: Adam steps per update")
    parser.add_argument("--lr", type=float, default=0.05, help="rerouting: Adam step size")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=RUNS / "moe")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--parts", default=",".join(PARTS), help="a subset of " + ",".join(PARTS))
    parser.add_argument("--name", default="moe_scaling", help="results file name (calibration runs: another)")
    parser.add_argument("--smoke", action="store_true", help="a random tiny MoE, 2 problems, N <= 4")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    levels = [int(x) for x in args.levels.split(",")]
    if args.smoke:
        from testtime.zoo.reasoner_moe import MoEConfig, init_moe_dir

        tiny = MoEConfig(n_layer=2, n_embd=32, n_head=2, expert_size=32, n_positions=256)
        args.backend = str(init_moe_dir(Path(tempfile.mkdtemp()) / "moe", tiny))
        args.problems, args.max_n, args.coverage_samples, args.reroute_n = 2, 6, 6, 2
        args.beam_problems = 1
        args.max_tokens, levels, args.runs = 24, levels[:1], Path(tempfile.mkdtemp()) / "runs"
    task = get_task(args.task)
    generator = with_experts(get_generator(args.backend, engine="hf"))  # the model's default count
    info = experts_info(generator)
    d = info.default_k
    counts = list(range(args.k_min or max(1, d - 1), (args.k_max or min(d + 1, info.max_k)) + 1))
    model_dir = Path(generator.inner.model_dir)
    summary = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": {"architecture": info.architecture, "experts": info.num_experts, "default_k": d,
                  "parameters": info.total_parameters, "active_at_default": info.active_parameters(d),
                  "trained": (model_dir / "training.json").is_file()},
        "counts": counts,
    }
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    for part, measure in PARTS.items():
        summary[part] = measure(task, generator, args, levels, counts) if part in parts else []
    path = args.results / f"{args.name}{'_smoke' if args.smoke else ''}.json"
    atomic_write_json(path, summary)
    write_report(summary, path)
    for r in summary["des"]:
        print(f"L{r['difficulty']} {r['strategy']:>16} N={r['n']:<3} acc {r['accuracy']:.3f} {_ci(r, *DIFF)}"
              f" tokens {r['generated_tokens']:.0f} flops {r['flops']:.3g}")
    for r in summary["beam"]:
        print(f"L{r['difficulty']} {r['strategy']:>16} N={r['n']} (PRM beam) acc {r['accuracy']:.3f} {_ci(r, *DIFF)}")
    for r in summary["coverage"]:
        print(f"L{r['difficulty']} coverage union {r['coverage_union']:.3f} vs best k={r['best_single']}:"
              f" {r['union_minus_best']:+.3f} [{r['ci_low']:+.2f},{r['ci_high']:+.2f}]")
    for r in summary["reroute"]:
        print(f"rerouting n={r['n']}: before {r['before']} after {r['after']} overhead {r['wall_overhead']:.2f}x")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
