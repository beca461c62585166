"""Corruption throughput (images/s per corruption and severity) and the CIFAR-10-C build time.

    python benchmarks/corruption_speed.py [--images 1000] [--out benchmarks/results/corruption_speed.json]
    python benchmarks/corruption_speed.py --build [--seed 0] [--root DIR]   # all of CIFAR-10-C, timed

The speed run corrupts ``--images`` real CIFAR-10 test images (the shared copy, else
the shipped subset) at every severity, single-threaded BLAS for comparable numbers,
and estimates the full build (19 corruptions × 5 severities × 10,000 images).
``--build`` runs :func:`testtime.data.cifar10c.build_cifar10c` (resumable; by default
into the cache that :class:`testtime.data.cifar10c.CIFAR10C` reads) and times it.
Results are written atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

# One BLAS thread: the machine is shared; set before NumPy loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from testtime.data.cifar10c import build_cifar10c  # noqa: E402
from testtime.data.corruptions import ALL, SEVERITIES, STANDARD, corrupt, frost_textures  # noqa: E402
from testtime.data.demo import load_test_set  # noqa: E402
from testtime.store.atomic import atomic_write_json  # noqa: E402


def measure(images: np.ndarray, indices: np.ndarray) -> list[dict]:
    frost_textures()  # built once per process; not part of the per-image cost
    rows = []
    for name in ALL:
        per_sev = []
        for s in SEVERITIES:
            start = time.perf_counter()
            corrupt(images, name, s, seed=0, indices=indices)
            per_sev.append(len(images) / (time.perf_counter() - start))
        rows.append({"corruption": name, "images_per_s": per_sev, "mean": float(np.mean(per_sev))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/results/corruption_speed.json")
    ap.add_argument("--build", action="store_true", help="build all of CIFAR-10-C and time it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default=None, help="build directory (default: the cache)")
    args = ap.parse_args()
    console = Console()
    images, labels, indices = load_test_set()
    if args.build:
        start = time.perf_counter()
        root = build_cifar10c(args.root, corruptions=STANDARD, seed=args.seed)
        seconds = time.perf_counter() - start
        console.print(f"CIFAR-10-C ({len(images)} images × 15 × 5) in {root}: {seconds:.0f} s")
        return
    if args.images < 1:
        raise SystemExit("--images must be positive")
    pick = np.random.default_rng(0).permutation(len(images))[: args.images]
    rows = measure(images[pick], indices[pick])
    table = Table(title=f"corruption throughput, {len(pick)} images, 1 thread")
    for col in ["corruption", *[f"s{s}" for s in SEVERITIES], "mean img/s", "s for 50k"]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["corruption"], *[f"{v:.0f}" for v in r["images_per_s"]],
                      f"{r['mean']:.0f}", f"{sum(10_000 / v for v in r['images_per_s']):.1f}")  # fmt: skip
    console.print(table)
    build_s = {
        group: sum(10_000 / v for r in rows if r["corruption"] in names for v in r["images_per_s"])
        for group, names in (("standard_15", STANDARD), ("all_19", ALL))
    }
    console.print(
        f"estimated single-thread build: 15 standard {build_s['standard_15'] / 60:.1f} min, "
        f"all 19 {build_s['all_19'] / 60:.1f} min"
    )
    atomic_write_json(
        args.out,
        {
            "images": len(pick),
            "machine": platform.processor() or platform.machine(),
            "threads": 1,
            "rows": rows,
            "estimated_build_seconds": build_s,
        },
    )


if __name__ == "__main__":
    main()
