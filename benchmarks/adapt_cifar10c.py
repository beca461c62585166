"""The CIFAR-10-C adaptation measurement (severity 5, batch 200, fixed seed).

Parts (``--parts``, default all), each a resumable benchmark run under ``--out``:

- ``main``: the BatchNorm ResNet (``resnet-bn``) with ``--methods`` under the
  reset-each-shift, continual and mixed protocols (the spec's reference table).
- ``wild``: SAR's wild settings on the GroupNorm ResNet (``resnet-gn``): batch size 1
  (continual) and online imbalanced label shift (IR 500,000, batch 64).
- ``guard``: Tent with and without the collapse guard where Tent collapses: the
  label-sorted (correlated) stream and the imbalanced label shift, batch 16.
- ``cost``: Tent's throughput against a plain forward+backward of the same model
  (same batch, same trainable parameters), and CoTTA's forwards per batch.

``--limit`` (images per domain) makes a run fit a small CPU; the summary states it.
Example (what fitted the project's shared 2-core CPU)::

    python benchmarks/adapt_cifar10c.py --limit 200 --threads 1 --out runs/adapt-c10c
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from testtime.adapt import get_method
from testtime.adapt.benchmark import BenchConfig, markdown_table, run_benchmark
from testtime.adapt.common import softmax_entropy
from testtime.adapt.params import collect_norm_params, configure_norm
from testtime.store.atomic import atomic_write_json, atomic_write_text
from testtime.zoo.cifar import load_cifar_model

MAIN_METHODS = "source,bn,tent,eta,eata,sar,cotta,rotta,lame,petal,psmt,cafa,nhl"


def part_main(args: argparse.Namespace) -> list[str]:
    tables = []
    for setting in ("reset", "continual", "mixed"):
        cfg = BenchConfig(methods=args.methods.split(","), setting=setting, limit=args.limit,
                          batch_size=200, seed=args.seed, model="resnet-bn")  # fmt: skip
        tables.append(markdown_table(run_benchmark(cfg, args.out / f"main-{setting}")))
    return tables


def part_wild(args: argparse.Namespace) -> list[str]:
    methods = ["source", "tent", "sar"]
    runs = [
        ("wild-bs1", BenchConfig(methods=methods, setting="continual", batch_size=1,
                                 limit=args.wild_limit, seed=args.seed, model="resnet-gn",
                                 domains=args.wild_domains.split(","))),
        ("wild-labelshift", BenchConfig(methods=methods, setting="label-shift", batch_size=64,
                                        limit=args.limit, seed=args.seed, model="resnet-gn",
                                        domains=args.wild_domains.split(","))),
    ]  # fmt: skip
    return [markdown_table(run_benchmark(cfg, args.out / name)) for name, cfg in runs]


def part_guard(args: argparse.Namespace) -> list[str]:
    tables = []
    for setting in ("correlated", "label-shift"):
        for guard in (False, True):
            cfg = BenchConfig(methods=["source", "tent"] if not guard else ["tent"],
                              setting=setting, batch_size=16, limit=args.limit, seed=args.seed,
                              model="resnet-bn", guard=guard,
                              domains=args.wild_domains.split(","))  # fmt: skip
            suffix = "-guard" if guard else ""
            tables.append(markdown_table(run_benchmark(cfg, args.out / f"guard-{setting}{suffix}")))
    return tables


def _time(fn, x: torch.Tensor, repeats: int) -> float:
    fn(x)  # warm-up (allocator, oneDNN primitives)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return repeats * len(x) / (time.perf_counter() - t0)


def part_cost(args: argparse.Namespace) -> list[str]:
    path = args.out / "cost.json"
    if path.exists():
        res = json.loads(path.read_text())
    else:
        torch.manual_seed(args.seed)
        x = torch.rand(200, 3, 32, 32)
        # Plain forward+backward: the same model, the same trainable parameters (norm affine),
        # the same loss, no optimizer step and no adaptation bookkeeping.
        plain = load_cifar_model("resnet-bn")
        configure_norm(plain, "affine")
        params = collect_norm_params(plain)[0]

        def fwd_bwd(batch: torch.Tensor) -> None:
            loss = softmax_entropy(plain(batch)).mean()
            grads = torch.autograd.grad(loss, params)
            del grads

        tent = get_method("tent", load_cifar_model("resnet-bn"))
        rates = {"plain": [], "tent": []}
        for _ in range(3):  # interleaved, so that load from other processes hits both alike
            rates["plain"].append(_time(fwd_bwd, x, args.cost_repeats))
            rates["tent"].append(_time(tent, x, args.cost_repeats))
        cotta = get_method("cotta", load_cifar_model("resnet-bn"))
        cotta(x)
        cotta(x)
        res = {
            "plain_fwd_bwd_img_s": max(rates["plain"]),
            "tent_img_s": max(rates["tent"]),
            "tent_over_plain": max(rates["tent"]) / max(rates["plain"]),
            "cotta_forwards_per_batch": cotta.forwards / 2,
            "cotta_backwards_per_batch": cotta.backwards / 2,
            "threads": torch.get_num_threads(),
        }
        atomic_write_json(path, res)
    return [
        "# Cost (resnet-bn, batch 200, best of 3 interleaved rounds)\n\n"
        f"- plain forward+backward: {res['plain_fwd_bwd_img_s']:.0f} img/s; Tent: "
        f"{res['tent_img_s']:.0f} img/s -> ratio **{res['tent_over_plain']:.2f}**\n"
        f"- CoTTA: {res['cotta_forwards_per_batch']:.1f} forwards and "
        f"{res['cotta_backwards_per_batch']:.1f} backwards per batch (random-noise input, "
        "so the anchor is unconfident and the 32 augmented views are used)\n"
    ]


PARTS = {"main": part_main, "wild": part_wild, "guard": part_guard, "cost": part_cost}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("runs/adapt-cifar10c"))
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    ap.add_argument("--methods", default=MAIN_METHODS, help="methods of the main part")
    ap.add_argument(
        "--limit", type=int, default=None, help="images per domain (default all 10,000)"
    )
    ap.add_argument("--wild-limit", type=int, default=100, help="images per domain at batch size 1")
    ap.add_argument(
        "--wild-domains", default="gaussian_noise,defocus_blur,snow,contrast,jpeg_compression"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cost-repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; valid: {', '.join(PARTS)}")
    sections = []
    for p in parts:
        sections += PARTS[p](args)
        limit = "all 10,000" if args.limit is None else f"{args.limit} (a seeded subset)"
        head = f"# CIFAR-10-C adaptation benchmark\n\nImages per domain: {limit}; seed {args.seed}.\n\n"
        atomic_write_text(args.out / "summary.md", head + "\n".join(sections))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
