"""LaCT vs attention vs small-chunk TTT (equal parameters) on multi-query associative
recall, and LaCT's hardware utilisation vs chunk size (Zhang et al. 2025, "Test-Time
Training Done Right").

    # throughput: tokens/s and achieved FLOP/s of one LaCTLayer vs chunk size (1 thread)
    .venv/bin/python benchmarks/ttt_layers.py throughput --seq 2048 --dim 256 --heads 4
    # quality: train the three models (resumable: rerun the same command), then recall
    # accuracy vs context length on test seeds (training batches use seeds >= 10**6)
    .venv/bin/python benchmarks/ttt_layers.py quality --out runs/ttt_layers --steps 3000

Results: benchmarks/results/ttt_layers_{throughput,quality}[-TAG].json. FLOPs are the
analytic count of LaCTLayer.flops_per_token (multiply-adds x 2), not a profiler's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from testtime.layers.attention import Attention
from testtime.layers.lact import LaCTConfig, LaCTLayer
from testtime.layers.lm import LMConfig, TinyLM, matched, num_parameters
from testtime.layers.recall import RecallSpec, recall_accuracy, recall_batch
from testtime.layers.train import TrainConfig, train
from testtime.layers.weights import save_model

RESULTS = Path(__file__).parent / "results"
TRAIN_SEED0 = 10**6  # training batch of step s: seed TRAIN_SEED0 + s; test batches: seeds 0..


def write(name: str, tag: str, obj: dict) -> Path:
    path = RESULTS / f"{name}{'-' + tag if tag else ''}.json"
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def timed(layer: torch.nn.Module, x: torch.Tensor, repeats: int, backward: bool) -> float:
    """Seconds per call (forward, or forward + backward of the mean output)."""
    def call() -> None:
        if backward:
            layer(x).mean().backward()
        else:
            with torch.no_grad():
                layer(x)

    call()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - t0) / repeats


def throughput(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    rows = []
    x = torch.randn(args.batch, args.seq, args.dim, requires_grad=args.backward)
    tokens = args.batch * args.seq
    # fwd+bwd costs about 3x the forward's FLOPs (the usual estimate)
    factor = 3 if args.backward else 1
    for chunk in args.chunks:
        layer = LaCTLayer(LaCTConfig(dim=args.dim, heads=args.heads, chunk=chunk, window=args.window,
                                     optimizer=args.optimizer))
        wall = timed(layer, x, args.repeats, args.backward)
        flops = factor * layer.flops_per_token(args.seq) * tokens
        rows.append({"mixer": "lact", "chunk": chunk, "tokens_per_s": tokens / wall,
                     "gflop_per_s": flops / wall / 1e9, "wall_s": wall})
        print(f"lact chunk {chunk:5d}: {tokens / wall:10.0f} tok/s  {flops / wall / 1e9:7.2f} GFLOP/s")
    wall = timed(Attention(args.dim, args.heads), x, args.repeats, args.backward)
    # projections + causal QK^T and AV (T/2 keys per query on average)
    flops = factor * tokens * (8 * args.dim * args.dim + 2 * args.dim * args.seq)
    rows.append({"mixer": "attention", "chunk": None, "tokens_per_s": tokens / wall,
                 "gflop_per_s": flops / wall / 1e9, "wall_s": wall})
    print(f"full attention   : {tokens / wall:10.0f} tok/s  {flops / wall / 1e9:7.2f} GFLOP/s")
    write("ttt_layers_throughput", args.tag, {"args": vars(args), "device": "cpu", "rows": rows})


def models(args: argparse.Namespace, vocab: int) -> dict[str, LMConfig]:
    lact = LMConfig(vocab_size=vocab, dim=args.dim, layers=args.layers, heads=args.heads,
                    mlp_hidden=2 * args.dim, chunk=args.chunk, window=args.window, optimizer=args.optimizer)
    return {"lact": lact, "ttt-small-chunk": matched(lact, "lact", chunk=args.small_chunk),
            "attention": matched(lact, "attention")}


def quality(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    spec = RecallSpec(pairs=args.pairs, queries=args.queries, gap=args.gap)
    out, report = Path(args.out), {"args": vars(args), "models": {}}
    tc = TrainConfig(steps=args.steps, lr=args.lr, checkpoint_every=args.checkpoint_every)
    for name, cfg in models(args, spec.vocab_size).items():
        torch.manual_seed(0)
        model = TinyLM(cfg)
        t0 = time.perf_counter()
        log = train(model, lambda s: recall_batch(spec, args.batch, TRAIN_SEED0 + s), tc, out / name,
                    {"model": cfg.__dict__, "spec": spec.__dict__, "batch": args.batch},
                    stop_after=args.stop_after)
        directory = save_model(out / name / "model", "tiny-lm", model)
        state = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-1] in ("w1", "w2", "w3"))
        (directory / "MODEL_CARD.md").write_text(
            f"# TinyLM {name} ({num_parameters(model):,} parameters)\n\n"
            f"testtime.layers.lm.TinyLM, mixer {cfg.mixer} (chunk {cfg.chunk}, window {cfg.window}, "
            f"fast optimiser {cfg.optimizer}), {cfg.layers} layers, dim {cfg.dim}; fast-weight state "
            f"{state:,} per sequence. Trained {len(log)} of {args.steps} steps (batch {args.batch}) on "
            f"MQAR ({spec.pairs} pairs, {spec.queries} queries, gap {spec.gap}; seeds >= {TRAIN_SEED0}). "
            "For the test-time-memory comparison only.\n")
        accs = {}
        with torch.no_grad():
            for pairs in args.eval_pairs:
                test = RecallSpec(pairs=pairs, queries=min(args.queries, pairs), gap=args.gap)
                tok, tgt = recall_batch(test, args.eval_batch, seed=pairs)
                accs[str(test.length)] = recall_accuracy(model(tok), tgt)
        report["models"][name] = {"params": num_parameters(model), "fast_weight_state": state,
                                  "steps_done": len(log),
                                  "final_loss": log[-1]["loss"] if log else None,
                                  "accuracy_by_length": accs, "wall_s_this_call": time.perf_counter() - t0}
        print(name, report["models"][name])
    write("ttt_layers_quality", args.tag, report)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("throughput", "quality"):
        s = sub.add_parser(name)
        s.add_argument("--dim", type=int, default=64)
        s.add_argument("--heads", type=int, default=2)
        s.add_argument("--window", type=int, default=16)
        s.add_argument("--optimizer", default="muon")
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--tag", default="")
    t = sub.choices["throughput"]
    t.add_argument("--seq", type=int, default=1024)
    t.add_argument("--batch", type=int, default=1)
    t.add_argument("--chunks", type=int, nargs="+", default=[16, 64, 256, 1024])
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--backward", action="store_true", help="time forward + backward (training)")
    q = sub.choices["quality"]
    q.add_argument("--out", required=True)
    q.add_argument("--layers", type=int, default=2)
    q.add_argument("--chunk", type=int, default=64)
    q.add_argument("--small-chunk", type=int, default=8)
    q.add_argument("--pairs", type=int, default=32)
    q.add_argument("--queries", type=int, default=16)
    q.add_argument("--gap", type=int, default=0)
    q.add_argument("--steps", type=int, default=3000)
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--lr", type=float, default=3e-3)
    q.add_argument("--checkpoint-every", type=int, default=50)
    q.add_argument("--stop-after", type=int, default=None, help="end this call after N steps (time-boxing)")
    q.add_argument("--eval-pairs", type=int, nargs="+", default=[8, 16, 32, 64])
    q.add_argument("--eval-batch", type=int, default=128)
    args = p.parse_args()
    (throughput if args.cmd == "throughput" else quality)(args)


if __name__ == "__main__":
    main()
