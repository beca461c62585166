"""Throughput of every adaptation method next to plain passes of the same network.

    python benchmarks/adapt_throughput.py [--device cpu|cuda] [--batch 200] [--iters 10]
        [--methods tent,eata,...] [--model resnet-bn] [--threads 1] [--data gaussian_noise]

Baselines on the same batches: ``forward`` (no grad, eval), ``fwd+bwd all weights``
(entropy loss, gradients for *all* weights) and ``fwd+bwd norm affine``
(gradients for the norm-layer affine parameters only, which is what Tent needs).
Times are medians over batches, each method timed in alternation with the
baselines (ratios use the adjacent baseline times). Each method's time per batch includes its optimizer step and bookkeeping; setup
(Fisher, SWA prior, ITTA/label-shift training on ``--source`` images) is timed
apart. The model is the zoo's CIFAR ResNet (trained weights when shipped, else a
random initialisation: throughput does not depend on the weights, except that
CoTTA-style methods augment only when the anchor is unsure, always the case for
random weights or random inputs (``--data random``, the default), so their numbers are
then worst cases; ``--data <corruption>`` times real severity-5 CIFAR-10-C batches). Columns "× all" / "× affine"
are baseline time / method time (> 1: faster than the baseline). Writes
benchmarks/results/adapt_throughput[-<device>].json atomically and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from testtime.adapt import ADAPT_METHODS, NEEDS_SOURCE_DATA, get_method
from testtime.adapt.common import softmax_entropy
from testtime.adapt.params import collect_norm_params, configure_norm
from testtime.store.atomic import atomic_write_json
from testtime.zoo.cifar import MODELS, build_model, load_cifar_model

RESULTS = Path(__file__).resolve().parent / "results"


def make_model(name: str, device: torch.device) -> tuple[torch.nn.Module, bool]:
    try:
        return load_cifar_model(name).to(device), True
    except FileNotFoundError:
        torch.manual_seed(0)
        return build_model(MODELS[name]).to(device).eval(), False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_once(step: Callable[[torch.Tensor], object], x: torch.Tensor, device) -> float:
    sync(device)
    start = time.perf_counter()
    step(x)
    sync(device)
    return time.perf_counter() - start


def baseline_steps(model_name: str, device) -> dict[str, Callable[[torch.Tensor], object]]:
    """The reference passes, each on its own copy of the network."""
    steps: dict[str, Callable[[torch.Tensor], object]] = {}
    model, _ = make_model(model_name, device)
    configure_norm(model, "frozen")
    steps["forward"] = torch.no_grad()(model)
    for label, mode in (("fwd+bwd all weights", "all"), ("fwd+bwd norm affine", "affine")):
        net, _ = make_model(model_name, device)
        configure_norm(net, mode)

        def step(x: torch.Tensor, net=net) -> None:
            for p in net.parameters():
                p.grad = None
            softmax_entropy(net(x)).mean().backward()

        steps[label] = step
    return steps


def interleaved(
    method: Callable[[torch.Tensor], object],
    base: dict[str, Callable[[torch.Tensor], object]],
    batches: list[torch.Tensor],
    device,
) -> tuple[float, dict[str, float]]:
    """Median seconds per batch of ``method`` and of each baseline, timed batch by
    batch in alternation (after one warm-up batch each), so that load changes on a
    shared machine hit both sides alike."""
    method(batches[0])
    for step in base.values():
        step(batches[0])
    own: list[float] = []
    ref: dict[str, list[float]] = {k: [] for k in base}
    for x in batches[1:]:
        own.append(timed_once(method, x, device))
        for k, step in base.items():
            ref[k].append(timed_once(step, x, device))
    return statistics.median(own), {k: statistics.median(v) for k, v in ref.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--iters", type=int, default=6, help="timed batches per method (+1 warm-up)")
    ap.add_argument("--methods", default=",".join(ADAPT_METHODS.names()))
    ap.add_argument("--model", default="resnet-bn")
    ap.add_argument(
        "--source", type=int, default=1000, help="source images for methods that need them"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--data", default="random",
        help="random | a corruption name (its severity-5 CIFAR-10-C images; source data = "
        "clean train images): the branch methods like CoTTA take depends on the inputs",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        ADAPT_METHODS.get(m)  # unknown names fail before any work

    g = torch.Generator().manual_seed(0)
    n = args.batch * (args.iters + 1)
    if args.data == "random":
        images = torch.rand(n, 3, 32, 32, generator=g)
        source = (torch.rand(args.source, 3, 32, 32, generator=g), torch.arange(args.source) % 10)
    else:  # a CIFAR-10-C domain at severity 5 (shuffled) and clean train images as source
        from testtime.adapt.bench_data import load_source_data
        from testtime.data.cifar10c import CIFAR10C
        from testtime.data.streams import to_tensor

        c10c = CIFAR10C(seed=0)
        idx = torch.randperm(len(c10c.labels), generator=g)[:n].numpy()
        images = to_tensor(c10c(args.data, 5, idx))
        source = load_source_data(args.source, 0)
        if source is None:
            raise SystemExit("no CIFAR-10 train images here for the source data; use --data random")
    batches = [b.to(device) for b in images.split(args.batch)]
    source = (source[0].to(device), source[1].to(device))
    _, trained = make_model(args.model, device)

    base_steps = baseline_steps(args.model, device)
    base_all: dict[str, list[float]] = {k: [] for k in base_steps}
    rows = []
    for name in methods:
        model, _ = make_model(args.model, device)
        options = {"source_data": source} if name in NEEDS_SOURCE_DATA or name == "psmt" else {}
        if name == "itta":
            options["train_steps"] = 20
        if name == "label-shift":
            options["train_steps"] = 500
        sync(device)
        t0 = time.perf_counter()
        method = get_method(name, model, **options)
        sync(device)
        setup = time.perf_counter() - t0
        sec, base = interleaved(method, base_steps, batches, device)
        for k, v in base.items():
            base_all[k].append(v)
        passes = len(batches)
        rows.append(
            {
                "method": name,
                "setup_s": round(setup, 3),
                "s_per_batch": sec,
                "images_per_s": args.batch / sec,
                "forwards_per_batch": method.forwards / passes,
                "backwards_per_batch": method.backwards / passes,
                "vs_fwd_bwd_all": base["fwd+bwd all weights"] / sec,
                "vs_fwd_bwd_norm_affine": base["fwd+bwd norm affine"] / sec,
                "trainable_params": sum(p.numel() for p in collect_norm_params(model)[0]),
            }
        )
        print(f"{name}: {args.batch / sec:.0f} img/s", flush=True)

    base = {k: statistics.median(v) for k, v in base_all.items()}
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor(),
        "threads": args.threads,
        "batch": args.batch,
        "model": args.model,
        "trained_weights": trained,
        "data": args.data,
        "torch": torch.__version__,
        "baselines_s_per_batch": base,
        "methods": rows,
    }
    out = args.out or RESULTS / f"adapt_throughput-{device.type}.json"
    atomic_write_json(out, result)

    table = Table(title=f"adaptation throughput, {args.model}, batch {args.batch}, {device}, "
                  f"{args.threads} thread(s), inputs: {args.data}")  # fmt: skip
    for col in (
        "method",
        "img/s",
        "fwd/batch",
        "bwd/batch",
        "× all",
        "× affine",
        "setup s",
    ):
        table.add_column(col, justify="right")
    for label, s in base.items():
        table.add_row(label, f"{args.batch / s:.0f}", "", "", "", "", "")
    for r in rows:
        table.add_row(
            r["method"], f"{r['images_per_s']:.0f}", f"{r['forwards_per_batch']:.1f}",
            f"{r['backwards_per_batch']:.1f}", f"{r['vs_fwd_bwd_all']:.2f}",
            f"{r['vs_fwd_bwd_norm_affine']:.2f}", f"{r['setup_s']:.1f}",
        )  # fmt: skip
    Console().print(table)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
