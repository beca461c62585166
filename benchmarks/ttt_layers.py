"""LaCT vs attention vs small-chunk TTT (equal parameters) on multi-query associative
recall, and LaCT's hardware utilisation vs chunk size (Zhang et al. 2025, "Test-Time
Training Done Right").

    # throughput: tokens/s and achieved FLOP/s of one LaCTLayer vs chunk size (1 thread)
    .venv/bin/python benchmarks/ttt_layers.py throughput --seq 2048 --dim 256 --heads 4
    # quality: train the three models (resumable: rerun the same command), then recall
    # accuracy vs context length on test seeds (training batches use seeds >= 10**6)
    .venv/bin/python benchmarks/ttt_layers.py quality --out runs/ttt_layers --steps 2000
    # report: a table and a two-panel plot from the JSONs (--tag names the quality run)
    .venv/bin/python benchmarks/ttt_layers.py report --throughput cpu1-fwd cpu1-fwdbwd

Results: benchmarks/results/ttt_layers_{throughput,quality}[-TAG].json, ttt_layers.{md,png}. FLOPs are the
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
from testtime.layers.lm import num_parameters
from testtime.layers.recall import RecallSpec
from testtime.zoo.recall_lm import (
    MODELS,
    RecallRecipe,
    fast_weight_state,
    held_out_accuracy,
    save_with_card,
    train_recall_lm,
)

RESULTS = Path(__file__).parent / "results"


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


def quality(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    recipe = RecallRecipe(dim=args.dim, layers=args.layers, heads=args.heads, window=args.window,
                          optimizer=args.optimizer, chunk=args.chunk, small_chunk=args.small_chunk,
                          pairs=args.pairs, queries=args.queries, gap=args.gap, steps=args.steps,
                          batch=args.batch, lr=args.lr, checkpoint_every=args.checkpoint_every)
    out, report = Path(args.out), {"args": vars(args), "models": {}}
    for name in args.models:
        t0 = time.perf_counter()
        model, log = train_recall_lm(name, recipe, out / name, stop_after=args.stop_after)
        accs = held_out_accuracy(model, recipe, args.eval_pairs, args.eval_batch)
        save_with_card(out / name / "model", name, model, recipe, log, accs)
        report["models"][name] = {"params": num_parameters(model), "fast_weight_state": fast_weight_state(model),
                                  "steps_done": len(log),
                                  "final_loss": log[-1]["loss"] if log else None,
                                  "accuracy_by_length": accs, "wall_s_this_call": time.perf_counter() - t0}
        print(name, report["models"][name])
    write("ttt_layers_quality", args.tag, report)


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality_run = json.loads((RESULTS / f"ttt_layers_quality{'-' + args.tag if args.tag else ''}.json").read_text())
    speed = {tag: json.loads((RESULTS / f"ttt_layers_throughput-{tag}.json").read_text()) for tag in args.throughput}
    models = quality_run["models"]
    lengths = list(next(iter(models.values()))["accuracy_by_length"])
    lines = ["# LaCT vs attention vs small-chunk TTT", "",
             f"MQAR recall accuracy on test seeds (chance 1/64); trained {quality_run['args']['steps']} steps "
             f"on {quality_run['args']['pairs']} pairs (length {RecallSpec(quality_run['args']['pairs'], quality_run['args']['queries']).length}), "
             f"LaCT chunk {quality_run['args']['chunk']}, small chunk {quality_run['args']['small_chunk']}, "
             f"window {quality_run['args']['window']}.", "",
             "| model | params | fast-weight state | final loss | " + " | ".join(f"{n} tokens" for n in lengths) + " |",
             "|---|---|---|---|" + "---|" * len(lengths)]
    for name, m in models.items():
        lines.append(f"| {name} | {m['params']:,} | {m['fast_weight_state']:,} | {m['final_loss']:.3f} | "
                     + " | ".join(f"{m['accuracy_by_length'][n]:.3f}" for n in lengths) + " |")
    for tag, run in speed.items():
        a = run["args"]
        lines += ["", f"Throughput `{tag}` ({'forward + backward' if a['backward'] else 'forward'}, dim {a['dim']}, "
                  f"{a['seq']} tokens, {a['threads']} thread, CPU):", "", "| mixer | chunk | tokens/s | GFLOP/s |", "|---|---|---|---|"]
        lines += [f"| {r['mixer']} | {r['chunk'] or '-'} | {r['tokens_per_s']:,.0f} | {r['gflop_per_s']:.2f} |" for r in run["rows"]]
    (RESULTS / "ttt_layers.md").write_text("\n".join(lines) + "\n")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, m in models.items():
        left.plot([int(n) for n in lengths], [m["accuracy_by_length"][n] for n in lengths], marker="o", label=name)
    left.axhline(1 / 64, color="grey", ls=":", label="chance")
    left.set(xlabel="sequence length (tokens)", ylabel="recall accuracy", title="MQAR, held-out seeds", ylim=(0, 1.02))
    left.legend()
    for tag, run in speed.items():
        rows = [r for r in run["rows"] if r["mixer"] == "lact"]
        right.plot([r["chunk"] for r in rows], [r["gflop_per_s"] for r in rows], marker="o", label=f"LaCT {tag}")
    right.set(xscale="log", xlabel="chunk size (tokens per update)", ylabel="achieved GFLOP/s",
              title="LaCT utilisation vs chunk (CPU)")
    right.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "ttt_layers.png", dpi=110)
    print("wrote", RESULTS / "ttt_layers.md", RESULTS / "ttt_layers.png")


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
    q.add_argument("--steps", type=int, default=2000)
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--lr", type=float, default=3e-3)
    q.add_argument("--checkpoint-every", type=int, default=50)
    q.add_argument("--stop-after", type=int, default=None, help="end this call after N steps (time-boxing)")
    q.add_argument("--eval-pairs", type=int, nargs="+", default=[8, 16, 32, 64])
    q.add_argument("--eval-batch", type=int, default=128)
    q.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                   help="train and evaluate only these (each resumes on its own)")
    r = sub.add_parser("report")
    r.add_argument("--tag", default="", help="the quality run's tag")
    r.add_argument("--throughput", nargs="+", default=["cpu1-fwd", "cpu1-fwdbwd"], help="throughput run tags")
    args = p.parse_args()
    {"throughput": throughput, "quality": quality, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
