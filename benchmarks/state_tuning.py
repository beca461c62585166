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

    .venv/bin/python benchmarks/state_tuning.py --out runs/state_tuning --pretrain-steps 3000 --steps 300

Results: benchmarks/results/state_tuning[-TAG].json; model dirs with MODEL_CARD.md under --out.
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
from testtime.learn.state_tuning import encode_examples, example_batch, greedy_accuracy
from testtime.tasks import get_task
from testtime.zoo.tokenizer import build_tokenizer

RESULTS = Path(__file__).parent / "results"
SIZES = {"small": {"dim": 32, "layers": 2, "head_size": 8}, "large": {"dim": 64, "layers": 4, "head_size": 16}}


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
    (directory / "MODEL_CARD.md").write_text(
        f"# RWKV-7 {size} ({num_parameters(model):,} parameters)\n\n"
        f"Character-level RWKV-7 (testtime.layers.rwkv7), {cfg.layers} layers, dim {cfg.dim}, head size "
        f"{cfg.head_size}. Trained {len(log)} of {args.pretrain_steps} steps (batch {args.batch}) on "
        f"{task.name} levels {args.pretrain_split} (reference solutions, seed TRAIN_SEED+1). Final loss "
        f"{log[-1]['loss'] if log else float('nan'):.3f}. For state-tuning experiments only.\n")
    return directory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--task", default="arith")
    p.add_argument("--pretrain-split", default="1-4")
    p.add_argument("--split", default="5-6", help="target levels for state tuning and testing")
    p.add_argument("--pretrain-problems", type=int, default=4000)
    p.add_argument("--pretrain-steps", type=int, default=3000)
    p.add_argument("--pretrain-lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=300, help="state-tuning steps")
    p.add_argument("--kernel", type=int, default=32)
    p.add_argument("--problems", type=int, default=64, help="held-out test problems")
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
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"state_tuning{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["untuned"], indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
