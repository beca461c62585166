"""State tuning of RWKV-7 (Liu, Li & Lin 2025): a small RWKV-7 with tuned initial states
vs an untuned larger one on a target task, and the effect of DBP vs plain gradient and
of the kernel-upscaled state.

Steps (each resumable: rerun the same command):
1. pretrain a small and a large RWKV-7 (character-level) on ``--pretrain-split`` of the
   task's generated problems (training seed TRAIN_SEED + 1; reference solutions);
2. state-tune the small one on ``--split`` (the target: problems of TRAIN_SEED, the
   kernel's support vectors come from those same training problems) with
   {gradient, dbp} x {plain, kernel M}, and as the large model's observer (DBP, plain state,
   KL to the large model), through the ``testtime learn state-tuning`` code path;
3. greedy accuracy of all of them on the held-out problems (TEST_SEED; never trained on).

    .venv/bin/python benchmarks/state_tuning.py --out runs/state_tuning --pretrain-steps 2000 --steps 300 --problems 400

Results: benchmarks/results/state_tuning[-TAG].json; model dirs with a README.md card under --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from testtime.layers.lm import num_parameters
from testtime.layers.rwkv7 import RWKV7, RWKV7Config
from testtime.layers.train import TrainConfig, train
from testtime.layers.weights import load_model, save_model
from testtime.learn import METHODS, LearnRequest
from testtime.learn.common import TEST_SEED, TRAIN_SEED, make_problems, parse_split
from testtime.learn.state_tuning import (
    encode_examples,
    example_batch,
    greedy_accuracy,
    load_tuned,
    majority_accuracy,
)
from testtime.scale.summary import bootstrap_ci
from testtime.store.atomic import atomic_write_json, atomic_write_text
from testtime.tasks import get_task
from testtime.zoo.tokenizer import build_tokenizer

RESULTS = Path(__file__).parent / "results"
SIZES = {"small": {"dim": 32, "layers": 2, "head_size": 8}, "large": {"dim": 64, "layers": 4, "head_size": 16}}


def matmul_flops_per_token(model: torch.nn.Module) -> int:
    """2 x the weights a token multiplies (all but the embedding lookup); the wkv state
    update adds O(layers x dim x head_size), small beside it, and is left out."""
    return 2 * sum(p.numel() for name, p in model.named_parameters() if not name.startswith("emb"))


def pretrain(args: argparse.Namespace, size: str, task, tok) -> Path:
    out = Path(args.out) / f"pretrain-{size}"
    cfg = RWKV7Config(vocab_size=len(tok), **SIZES[size])
    torch.manual_seed(0)
    model = RWKV7(cfg)
    problems = make_problems(task, parse_split(args.pretrain_split), args.pretrain_problems, TRAIN_SEED + 1)
    examples = encode_examples(task, problems, tok, 128)

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        return example_batch(examples, torch.randint(len(examples), (args.batch,), generator=g).tolist(),
                             tok.pad_token_id)

    tc = TrainConfig(steps=args.pretrain_steps, lr=args.pretrain_lr, checkpoint_every=50)
    log = train(model, batches, tc, out, {"model": cfg.__dict__, "task": task.name,
                                          "split": args.pretrain_split, "problems": args.pretrain_problems},
                stop_after=args.stop_after)
    directory = save_model(out / "model", "rwkv7", model)
    atomic_write_json(directory / "training.json", {"steps": len(log), "of": args.pretrain_steps,
                                                    "batch": args.batch, "lr": args.pretrain_lr,
                                                    "split": args.pretrain_split, "final_loss": log[-1]["loss"] if log else None,
                                                    "wall_s": sum(r["wall_s"] for r in log), "threads": args.threads})
    return directory


def write_card(directory: Path, size: str, task_name: str, report: dict) -> None:
    """README.md model card from the training record and the measured accuracies."""
    _, model = load_model(directory)
    cfg, training = model.cfg, json.loads((directory / "training.json").read_text())
    args = report["args"]
    lines = [f"# RWKV-7 {size}, character-level {task_name} ({num_parameters(model):,} parameters)", "",
             f"A minimal RWKV-7 (`testtime.layers.rwkv7`, parameter names of public x070 checkpoints): "
             f"{cfg.layers} layers, dim {cfg.dim}, head size {cfg.head_size}, the embedded models' character "
             f"tokenizer. Trained by `benchmarks/state_tuning.py` for {training['steps']} of {training['of']} steps "
             f"(batch {training['batch']}, lr {training['lr']}, {training['wall_s'] / 60:.0f} min of steps on "
             f"{training['threads']} thread) on reference solutions of {task_name} levels {training['split']} "
             f"(generated with seed TRAIN_SEED + 1); final loss {training['final_loss']:.3f}.", "",
             f"Greedy accuracy on {args['problems']} held-out problems of levels {args['split']} (TEST_SEED, never "
             f"trained on): untuned {report['untuned'][size]['accuracy']:.3f}."]
    if size == "small":
        lines += ["", "With its initial states tuned (weights frozen; `testtime learn state-tuning`, "
                  f"{args['steps']} steps on training problems of levels {args['split']}):", ""]
        lines += [f"- {name}: {row['accuracy']:.3f}" for name, row in report["tuned_small"].items()]
    lines += ["", "For the state-tuning experiments of `testtime`; not a general language model."]
    atomic_write_text(directory / "README.md", "\n".join(lines) + "\n")

def write_markdown(report: dict, path: Path) -> None:
    """The comparison as a table: accuracy with a bootstrap 95% interval over problems."""
    n, args = report["args"]["problems"], report["args"]

    def cell(acc: float) -> str:
        k = round(acc * n)
        low, high = bootstrap_ci([1.0] * k + [0.0] * (n - k))
        return f"{acc:.3f} [{low:.3f}, {high:.3f}]"

    small, large = report["untuned"]["small"], report["untuned"]["large"]
    lines = ["# State tuning of RWKV-7", "",
             f"Greedy accuracy on {n} held-out {args['task']} problems of levels {args['split']} (TEST_SEED). "
             f"The models were pretrained on levels {args['pretrain_split']}; states are tuned for "
             f"{args['steps']} steps on generated training problems of levels {args['split']}, weights frozen.",
             "", "| model | params | matmul FLOPs / token | accuracy [95% CI] |", "|---|---|---|---|",
             f"| small, untuned | {small['params']:,} | {small['flops_per_token']:,} | {cell(small['accuracy'])} |"]
    lines += [f"| small, state-tuned: {name} | {small['params']:,} | {small['flops_per_token']:,}"
              f"{' + kernel read-out' if 'kernel0' not in name else ''} | {cell(row['accuracy'])} |"
              for name, row in report["tuned_small"].items()]
    lines.append(f"| large, untuned | {large['params']:,} | {large['flops_per_token']:,} | {cell(large['accuracy'])} |")
    equal = report.get("equal_cost")
    if equal:
        k = equal["samples"]
        lines += ["", f"At equal inference cost: the small model votes over {k} samples (T {equal['temperature']}), "
                  f"{k} x {small['flops_per_token']:,} = {k * small['flops_per_token']:,} FLOPs per token position "
                  f"vs the large model's greedy {large['flops_per_token']:,}.", "",
                  "| | accuracy [95% CI] |", "|---|---|",
                  f"| small, untuned, majority@{k} | {cell(equal['small_untuned'])} |"]
        lines += [f"| small, state-tuned {name.split('_', 1)[1]}, majority@{k} | {cell(acc)} |"
                  for name, acc in equal.items() if name.startswith("small_") and name != "small_untuned"]
        lines.append(f"| large, untuned, greedy | {cell(equal['large_greedy'])} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--task", default="arith")
    p.add_argument("--pretrain-split", default="1-4")
    p.add_argument("--split", default="5-6", help="target levels for state tuning and testing")
    p.add_argument("--pretrain-problems", type=int, default=4000)
    p.add_argument("--pretrain-steps", type=int, default=2000)
    p.add_argument("--pretrain-lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=300, help="state-tuning steps")
    p.add_argument("--kernel", type=int, default=32)
    p.add_argument("--problems", type=int, default=400, help="held-out test problems")
    p.add_argument("--stop-after", type=int, default=None, help="pretraining: end this call after N steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    task, tok = get_task(args.task), build_tokenizer()
    dirs = {size: pretrain(args, size, task, tok) for size in SIZES}
    test = make_problems(task, parse_split(args.split), args.problems, TEST_SEED)
    report: dict = {"args": vars(args), "untuned": {}, "tuned_small": {}}
    for size, directory in dirs.items():
        _, model = load_model(directory)
        t0 = time.perf_counter()
        acc = greedy_accuracy(model, task, test, tok, 96)
        report["untuned"][size] = {"params": num_parameters(model), "accuracy": acc,
                                   "flops_per_token": matmul_flops_per_token(model),
                                   "eval_wall_s": time.perf_counter() - t0}
    variants = {f"{o}-kernel{k}": {"optimizer": o, "kernel": k} for o in ("gradient", "dbp")
                for k in (0, args.kernel)}
    variants["observer-dbp-kernel0"] = {"objective": "observer", "teacher": str(dirs["large"])}
    for name, options in variants.items():
        request = LearnRequest(method="state-tuning", task=task, split=args.split, problems=test,
                               out=Path(args.out) / f"tune-{name}", model_dir=dirs["small"],
                               options={**options, "steps": args.steps}, show_progress=False)
        t0 = time.perf_counter()
        metrics = METHODS.create("state-tuning", request)
        report["tuned_small"][name] = {"accuracy": metrics["after"]["accuracy"],
                                       "before": metrics["before"]["accuracy"],
                                       "final_loss": metrics["final_loss"],
                                       "wall_s": time.perf_counter() - t0}
        print(name, report["tuned_small"][name])
    # equal inference cost: the small model samples as many answers as the large one's
    # FLOPs per token buy, and votes; the tuned state is the paper's method (DBP + kernel),
    # fixed before anything was measured, at T 1 (not tuned)
    k = round(report["untuned"]["large"]["flops_per_token"] / report["untuned"]["small"]["flops_per_token"])
    _, small = load_model(dirs["small"])
    report["equal_cost"] = {"samples": k, "temperature": 1.0, "large_greedy": report["untuned"]["large"]["accuracy"]}
    for name, model in (("small_untuned", small), (f"small_dbp-kernel{args.kernel}",
                                                    load_tuned(small, Path(args.out) / f"tune-dbp-kernel{args.kernel}"))):
        report["equal_cost"][name] = majority_accuracy(model, task, test, tok, 96, k, seed=1)
    print("equal cost", report["equal_cost"])
    for size, directory in dirs.items():
        write_card(directory, size, task.name, report)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"state_tuning{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, path.with_suffix(".md"))
    print(json.dumps(report["untuned"], indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
