"""TinyReasoner quality: pass@1 / pass@8 / pass@64 at temperature 1.0 and greedy
accuracy per task level, on held-out problems (test seed, never used in training
or checkpoint selection).

    python benchmarks/reasoner_quality.py [--model DIR] [--problems 500] [--samples 64] [--card]

Sampling runs in rounds to save compute: every problem gets ``--round`` (8)
samples, giving pass@1 and pass@8 by the unbiased estimator (Chen et al. 2021)
with n = 8; then only problems still without a correct sample get more, up to
``--samples`` (64). pass@64 with n = k = 64 is the indicator "some sample is
correct", which stopping at the first correct round leaves unchanged.

Writes --out (JSON, rewritten atomically after every level, so a killed run
resumes where it stopped) and, with --card, quality.json + the model card in DIR.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

from testtime.backends.base import SamplingParams
from testtime.backends.local import LocalGenerator
from testtime.store.atomic import atomic_write_json
from testtime.tasks import SYNTHETIC_TASKS, get_task
from testtime.zoo import reasoner_path
from testtime.zoo.reasoner_card import QUALITY_INFO, write_model_card
from testtime.zoo.reasoner_data import TEST_SEED
from testtime.zoo.reasoner_sampling import pass_at_k


def evaluate_level(
    gen: LocalGenerator, task_name: str, level: int, problems: int, samples: int, round_size: int, seed: int
) -> dict:
    task = get_task(task_name)
    items = task.generate(problems, level, seed=TEST_SEED)
    # Twice the longest reference solution bounds runaway samples without cutting real ones.
    max_tokens = 2 * max(gen.count_tokens(task.solve(p)) for p in items) + 16
    start, tokens = time.time(), 0
    correct = [0] * problems
    first_round: list[int] = []
    todo = list(range(problems))
    for drawn in range(0, samples, round_size):
        n = min(round_size, samples - drawn)
        params = SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens, seed=seed * 1000 + drawn)
        result = gen.generate([items[i].prompt for i in todo], params)
        tokens += result.usage.completion_tokens
        for i, outs in zip(todo, result.completions, strict=True):
            correct[i] += sum(task.is_correct(items[i], c.text) for c in outs)
        if drawn == 0:
            first_round = list(correct)
        todo = [i for i in todo if correct[i] == 0]
        if not todo:
            break
    greedy = gen.generate([p.prompt for p in items], SamplingParams(temperature=0.0, max_tokens=max_tokens))
    row = {"task": task_name, "level": level, "problems": problems, "samples": samples}
    n0 = min(round_size, samples)
    row["pass@1"] = sum(pass_at_k(n0, c, 1) for c in first_round) / problems
    row[f"pass@{n0}"] = sum(pass_at_k(n0, c, n0) for c in first_round) / problems
    row[f"pass@{samples}"] = sum(c > 0 for c in correct) / problems
    row["greedy"] = sum(
        task.is_correct(p, outs[0].text) for p, outs in zip(items, greedy.completions, strict=True)
    ) / problems
    row["sampled_tokens"] = tokens
    row["wall_s"] = round(time.time() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=reasoner_path())
    parser.add_argument("--tasks", default=",".join(SYNTHETIC_TASKS))
    parser.add_argument("--problems", type=int, default=500, help="held-out problems per arith level")
    parser.add_argument("--other-problems", type=int, default=100, help="per level of the other tasks")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--round", type=int, default=8, help="samples per problem per round")
    parser.add_argument("--levels", default="", help="only these levels, e.g. 6 (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/reasoner_quality.json"))
    parser.add_argument("--card", action="store_true", help="also write quality.json and the model card")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    gen = LocalGenerator(args.model, max_batch=512)
    # Identify the model by its weights, not its path: retrained weights in the same
    # directory must not inherit the old model's rows.
    weights = hashlib.sha256((args.model / "model.safetensors").read_bytes()).hexdigest()
    report = {
        "model": str(args.model), "weights_sha256": weights, "test_seed": TEST_SEED, "results": []
    }
    if args.out.exists():  # resume / extend: keep levels already measured on these weights
        previous = json.loads(args.out.read_text())
        if previous.get("weights_sha256") == weights:
            report["results"] = previous["results"]
    wanted = [int(x) for x in args.levels.split(",")] if args.levels else None
    for name in args.tasks.split(","):
        n_problems = args.problems if name == "arith" else args.other_problems
        for level in get_task(name).levels:
            if wanted is not None and level not in wanted:
                continue
            key = (name, level, n_problems, args.samples)
            if any((r["task"], r["level"], r["problems"], r["samples"]) == key for r in report["results"]):
                continue
            row = evaluate_level(gen, name, level, n_problems, args.samples, args.round, args.seed)
            report["results"] = [
                r for r in report["results"] if (r["task"], r["level"]) != (name, level)
            ] + [row]
            report["results"].sort(key=lambda r: (r["task"], r["level"]))
            atomic_write_json(args.out, report)
            print(json.dumps(row), flush=True)
    if args.card:
        atomic_write_json(args.model / QUALITY_INFO, report)
        write_model_card(args.model)


if __name__ == "__main__":
    main()
