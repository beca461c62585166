"""TinyReasoner quality: pass@1 / pass@8 / pass@64 at temperature 1.0 and greedy
accuracy per task level, on held-out problems (test seed, never used in training
or checkpoint selection). Unbiased pass@k estimator from n samples per problem.

    python benchmarks/reasoner_quality.py [--model DIR] [--problems 500] [--samples 64]

Writes --out (JSON, rewritten atomically after every level, so a killed run
resumes where it stopped) and, with --card, quality.json + the model card in DIR.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from testtime.store.atomic import atomic_write_json
from testtime.tasks import SYNTHETIC_TASKS, get_task
from testtime.zoo import reasoner_path
from testtime.zoo.reasoner import QUALITY_INFO, write_model_card
from testtime.zoo.reasoner_data import TEST_SEED
from testtime.zoo.reasoner_sampling import pass_at_k, sample


def evaluate_level(model, tokenizer, task_name: str, level: int, problems: int, samples: int, seed: int) -> dict:
    task = get_task(task_name)
    items = task.generate(problems, level, seed=TEST_SEED)
    prompts = [p.prompt for p in items]
    start = time.time()
    generator = torch.Generator().manual_seed(seed)
    sampled = sample(model, tokenizer, prompts, n=samples, temperature=1.0, generator=generator)
    greedy = sample(model, tokenizer, prompts, n=1, temperature=0.0)
    correct = [sum(task.is_correct(p, s) for s in outs) for p, outs in zip(items, sampled, strict=True)]
    row = {"task": task_name, "level": level, "problems": problems, "samples": samples}
    for k in (1, 8, 64):
        if k <= samples:
            row[f"pass@{k}"] = sum(pass_at_k(samples, c, k) for c in correct) / problems
    row["greedy"] = sum(task.is_correct(p, g[0]) for p, g in zip(items, greedy, strict=True)) / problems
    row["wall_s"] = round(time.time() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=reasoner_path())
    parser.add_argument("--tasks", default=",".join(SYNTHETIC_TASKS))
    parser.add_argument("--problems", type=int, default=500, help="held-out problems per arith level")
    parser.add_argument("--other-problems", type=int, default=100, help="per level of the other tasks")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/reasoner_quality.json"))
    parser.add_argument("--card", action="store_true", help="also write quality.json and the model card")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    report = {"model": str(args.model), "samples": args.samples, "problems": args.problems,
              "test_seed": TEST_SEED, "results": []}
    if args.out.exists():  # resume: keep finished levels measured with the same settings
        previous = json.loads(args.out.read_text())
        if {k: previous.get(k) for k in ("model", "samples", "problems")} == {
            k: report[k] for k in ("model", "samples", "problems")
        }:
            report["results"] = previous["results"]
    done = {(r["task"], r["level"]) for r in report["results"]}
    for name in args.tasks.split(","):
        n_problems = args.problems if name == "arith" else args.other_problems
        for level in get_task(name).levels:
            if (name, level) in done:
                continue
            row = evaluate_level(model, tokenizer, name, level, n_problems, args.samples, args.seed)
            report["results"].append(row)
            atomic_write_json(args.out, report)
            print(json.dumps(row), flush=True)
    if args.card:
        atomic_write_json(args.model / QUALITY_INFO, report)
        write_model_card(args.model)


if __name__ == "__main__":
    main()
