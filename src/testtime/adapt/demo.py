"""A one-minute adaptation demo for ``make run``: source vs BN adapt vs Tent.

The shipped BatchNorm ResNet meets two CIFAR-10-C corruptions at severity 5 (1,000
test images each: a seeded subset of the full test set when the shared copy is
present, else the shipped demo subset), reset-each-shift protocol, batch 200. It goes
through the benchmark itself (:func:`testtime.adapt.benchmark.run_benchmark`), so the
demo's table has the same meaning and the same resumability.
"""

from __future__ import annotations

import os
from pathlib import Path

from testtime.adapt.benchmark import BenchConfig, run_benchmark
from testtime.store.atomic import atomic_write_text

DEMO_METHODS = ["source", "bn", "tent"]
DEMO_DOMAINS = ["gaussian_noise", "contrast"]


def run_demo(out_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Run the demo into ``out_dir/adapt``; returns the path of its markdown table."""
    out = Path(out_dir) / "adapt"
    config = BenchConfig(
        methods=DEMO_METHODS, setting="reset", severity=5, batch_size=200, limit=1000,
        domains=DEMO_DOMAINS, model="resnet-bn", seed=0,
    )  # fmt: skip
    results = run_benchmark(config, out, progress=progress, log=lambda _: None)
    m = results["methods"]
    summary = ", ".join(f"{k} {m[k]['mean_error']:.1f}%" for k in DEMO_METHODS)
    table = out / "results.md"
    atomic_write_text(
        table,
        table.read_text() + f"\nMean online error over {', '.join(DEMO_DOMAINS)}: {summary}.\n",
    )
    return table
