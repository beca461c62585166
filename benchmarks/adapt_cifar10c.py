"""The CIFAR-10-C adaptation measurement (severity 5, batch 200, fixed seed).

Parts (``--parts``, default all), each a resumable benchmark run under ``--out``:

- ``main``: the BatchNorm ResNet (``resnet-bn``) with ``--methods`` under the
  reset-each-shift, continual and mixed protocols (the spec's reference table).
- ``wild``: SAR's wild settings on the GroupNorm ResNet (``resnet-gn``): batch size 1
  (continual) and online imbalanced label shift (IR 500,000, batch 64).
- ``guard``: Tent with and without the collapse guard where Tent collapses: the
  label-sorted (correlated) stream and the imbalanced label shift, batch 16.
- ``cost``: Tent's throughput against a plain forward+backward of the same model, and
  CoTTA's forwards per batch (timed by ``benchmarks/adapt_throughput.py``).

Without ``--limit`` every method sees every test image of every domain (the 10,000 of
the shared CIFAR-10 copy; 150,000 per protocol). Every run is resumable: each finished
(method, protocol) is kept (``<out>/main-<setting>/methods/<method>.json``), and a method
killed inside its stream resumes at its last domain boundary (mixed: every 10,000
images), so a kill loses at most the domain in flight; ``partial/<method>.json`` holds
the errors so far (an "unfinished" row in ``results.md``). ``--methods`` / ``--settings``
/ ``--parts`` pick subsets, so fast methods can finish first and slow ones continue in
later runs into the same ``--out``. Examples::

    # fast methods, all protocols, then the slow ones (CoTTA, PETAL, PSMT: ~2-11 img/s on CPU)
    python benchmarks/adapt_cifar10c.py --parts main --methods source,bn,tent,eta,eata,sar,rotta,lame,cafa,nhl,itta --threads 2 --out runs/adapt-c10c
    python benchmarks/adapt_cifar10c.py --parts main --methods cotta,petal,psmt --settings continual --threads 2 --out runs/adapt-c10c
    python benchmarks/adapt_cifar10c.py --limit 200 --threads 1 --out runs/adapt-c10c-small   # a seeded subset
    python benchmarks/adapt_cifar10c.py --device cuda --out runs/adapt-c10c
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from testtime.adapt.benchmark import BenchConfig, markdown_table, run_benchmark
from testtime.store.atomic import atomic_write_text

MAIN_METHODS = "source,bn,tent,eta,eata,sar,cotta,rotta,lame,petal,psmt,cafa,nhl,itta"


def part_main(args: argparse.Namespace) -> list[str]:
    # "dirichlet" is the literature's class-correlated stream (setting "correlated" with
    # Dirichlet(--delta)); "correlated" alone is the label-sorted stream.
    tables = []
    for setting in args.settings.split(","):
        stream = {"setting": "correlated", "delta": args.delta} if setting == "dirichlet" else {
            "setting": setting}  # fmt: skip
        cfg = BenchConfig(methods=args.methods.split(","), limit=args.limit, batch_size=200,
                          seed=args.seed, model=args.model, device=args.device, **stream)  # fmt: skip
        tables.append(markdown_table(run_benchmark(cfg, args.out / f"main-{setting}")))
    return tables


def part_wild(args: argparse.Namespace) -> list[str]:
    methods = ["source", "tent", "sar"]
    domains = args.wild_domains.split(",")
    bs1 = {"setting": "continual", "batch_size": 1, "limit": args.wild_limit, "seed": args.seed,
           "model": args.gn_model, "domains": domains, "device": args.device}  # fmt: skip
    runs = [
        ("wild-bs1", BenchConfig(methods=methods, **bs1)),
        # Tent collapses at batch size 1: the same run under the collapse guard (horizon
        # scaled to the stream like in the guard part).
        ("wild-bs1-guard", BenchConfig(methods=["tent"], guard=True, **bs1,
                                       guard_options={"horizon": max(50, args.wild_limit // 2)})),
        ("wild-labelshift", BenchConfig(methods=[*methods, "label-shift"], setting="label-shift",
                                        batch_size=64, limit=args.limit, seed=args.seed,
                                        model=args.gn_model,
                                        domains=domains, device=args.device)),
    ]  # fmt: skip
    return [markdown_table(run_benchmark(cfg, args.out / name)) for name, cfg in runs]


def part_guard(args: argparse.Namespace) -> list[str]:
    # The guard's marginal horizon must span several class blocks of a label-ordered stream
    # (each is a tenth of a domain): 5,000 images by default (1,000 per class), scaled
    # down with --limit.
    horizon = 5000 if args.limit is None else max(50, args.limit // 2)
    # (out name, model, setting, Tent options). With the CIFAR default lr (1e-3) the BN
    # model's loss on label-ordered batches comes from batch statistics, not from a
    # parameter collapse; lr 1e-2 on the GN model makes Tent collapse (one class).
    scenarios = [
        ("bn-correlated", "resnet-bn", "correlated", {}),
        ("bn-label-shift", "resnet-bn", "label-shift", {}),
        ("gn-label-shift-lr1e-2", "resnet-gn", "label-shift", {"lr": 1e-2}),
    ]
    tables = []
    for name, model, setting, tent_options in scenarios:
        for guard in (False, True):
            cfg = BenchConfig(methods=["source", "tent"] if not guard else ["tent"],
                              setting=setting, batch_size=16, limit=args.limit, seed=args.seed,
                              model=model, guard=guard,
                              guard_options={"horizon": horizon} if guard else {},
                              method_options={"tent": tent_options},
                              domains=args.wild_domains.split(","), device=args.device)  # fmt: skip
            out = args.out / f"guard-{name}{'-guard' if guard else ''}"
            tables.append(markdown_table(run_benchmark(cfg, out)))
    return tables


def part_cost(args: argparse.Namespace) -> list[str]:
    # The timing itself is benchmarks/adapt_throughput.py (interleaved with plain passes of
    # the same network); this part runs it for Tent and CoTTA and summarises.
    path = args.out / "throughput.json"
    if not path.exists():
        script = Path(__file__).resolve().parent / "adapt_throughput.py"
        subprocess.run(
            [sys.executable, str(script), "--methods", "tent,cotta", "--model", "resnet-bn",
             "--threads", str(args.threads), "--device", args.device, "--out", str(path),
             "--data", "gaussian_noise"],
            check=True,
        )  # fmt: skip
    res = json.loads(path.read_text())
    rows = {r["method"]: r for r in res["methods"]}
    tent, cotta = rows["tent"], rows["cotta"]
    return [
        f"# Cost (resnet-bn, batch {res['batch']}, {res['device']}, {res['threads']} thread(s))\n\n"
        f"- Tent: {tent['images_per_s']:.0f} img/s = **{tent['vs_fwd_bwd_norm_affine']:.2f}x** a plain "
        f"forward+backward of the same model (gradients for the norm affine parameters), "
        f"{tent['vs_fwd_bwd_all']:.2f}x one with gradients for all weights\n"
        f"- CoTTA: {cotta['forwards_per_batch']:.1f} forwards and {cotta['backwards_per_batch']:.1f} "
        f"backwards per batch on severity-5 gaussian_noise batches\n"
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
        "--settings", default="continual,reset,mixed,dirichlet",
        help="protocols of the main part (dirichlet: correlated with Dirichlet(--delta))",
    )
    ap.add_argument("--delta", type=float, default=0.05, help="Dirichlet delta of 'dirichlet'")
    ap.add_argument("--model", default="resnet-bn", help="source model of the main part")
    ap.add_argument("--gn-model", default="resnet-gn", help="GroupNorm model of the wild part")
    ap.add_argument(
        "--limit", type=int, default=None, help="images per domain (default: all test images)"
    )
    ap.add_argument("--wild-limit", type=int, default=100, help="images per domain at batch size 1")
    ap.add_argument(
        "--wild-domains", default="gaussian_noise,defocus_blur,snow,contrast,jpeg_compression"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; valid: {', '.join(PARTS)}")
    sections = []
    if args.limit is None:
        from testtime.data.cifar10c import CIFAR10C

        limit = f"all {len(CIFAR10C(seed=args.seed).labels):,}"
    else:
        limit = f"{args.limit} (a seeded subset)"
    for p in parts:
        sections += PARTS[p](args)
        head = f"# CIFAR-10-C adaptation benchmark\n\nImages per domain: {limit}; seed {args.seed}.\n\n"
        atomic_write_text(args.out / "summary.md", head + "\n".join(sections))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
