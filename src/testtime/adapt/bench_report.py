"""A benchmark run's reports: ``results.json``, ``results.md`` (one row per method)
and ``heatmap.png`` (methods × domains), rewritten as one set after each method."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from testtime.adapt.bench_config import BenchConfig
from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from testtime.store.resultset import result_set


def collect(out: Path) -> dict[str, dict[str, Any]]:
    """All finished per-method results in ``out/methods``, by key, in finishing order."""
    files = sorted((out / "methods").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return {p.stem: json.loads(p.read_text()) for p in files}


def write_reports(out: Path, config: BenchConfig) -> dict[str, Any]:
    """(Re)write ``results.json``, ``results.md`` and ``heatmap.png`` from the finished
    methods, as one set (see :func:`testtime.store.result_set`)."""
    methods = collect(out)
    results = {"config": config.fingerprint(), "methods": methods}
    if (out / "stream.json").exists():
        results["stream"] = json.loads((out / "stream.json").read_text())
    partial = {p.stem: json.loads(p.read_text()) for p in sorted((out / "partial").glob("*.json"))
               if p.stem not in methods}  # fmt: skip
    if partial:
        results["partial"] = partial
    with result_set(out) as stage:
        atomic_write_json(stage / "results.json", results)
        atomic_write_text(stage / "results.md", markdown_table(results))
        if methods:
            plot_heatmap(results, stage / "heatmap.png")
    return results


def _domains(results: dict[str, Any]) -> list[str]:
    # The configured order (CoTTA's), whatever order a mixed stream first met them in.
    rows = [*results["methods"].values(), *results.get("partial", {}).values()]
    seen = {d for r in rows for d in r["per_domain_error"]}
    return [d for d in results["config"]["domains"] if d in seen]


_SHORT = re.compile(r"_(noise|blur|transform|compression)$")


def markdown_table(results: dict[str, Any]) -> str:
    """One row per method: mean online error, per-domain errors and the cost columns."""
    cfg, methods = results["config"], results["methods"]
    domains = _domains(results)
    limit = "all" if cfg["limit"] is None else cfg["limit"]
    lines = [
        f"# Online error (%) — {cfg['model']}, setting {cfg['setting']}, severity {cfg['severity']}, "
        f"batch {cfg['batch_size']}, images per domain: {limit}, seed {cfg['seed']}"
        + (", collapse guard on" if cfg["guard"] else "")
        + (f", {results['stream']['distinct_classes_per_batch']:.2f} distinct classes per batch"
           if "stream" in results else ""),
        "",
        "| method | mean | "
        + " | ".join(_SHORT.sub("", d) for d in domains)
        + " | img/s | fwd/batch | bwd/batch | peak MB | wall s |",
        "|---|---|" + "---|" * len(domains) + "---|---|---|---|---|",
    ]
    for key, r in methods.items():
        cells = [f"{r['per_domain_error'].get(d, float('nan')):.1f}" for d in domains]
        lines.append(
            f"| {key} | **{r['mean_error']:.2f}** | " + " | ".join(cells)
            + f" | {r['images_per_s']:.0f} | {r['forwards_per_batch']:.2f} | "
            f"{r['backwards_per_batch']:.2f} | {r['peak_mem_mb']:.0f} | {r['wall_s']:.0f} |"
        )  # fmt: skip
    for key, r in results.get("partial", {}).items():  # unfinished: no mean, no cost
        cells = [f"{r['per_domain_error'][d]:.1f}" if d in r["per_domain_error"] else "–" for d in domains]
        lines.append(
            f"| {key} (unfinished: {r['images']:,}/{r['total_images']:,} images) | – | "
            + " | ".join(cells) + f" | {r['images_per_s']:.0f} | – | – | – | – |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_heatmap(results: dict[str, Any], path: Path) -> None:
    """Methods × domains heat map of the online error, with the mean as the last column."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    domains = _domains(results)
    keys = list(methods)
    grid = np.array(
        [[methods[k]["per_domain_error"].get(d, np.nan) for d in domains] + [methods[k]["mean_error"]]
         for k in keys]
    )  # fmt: skip
    cols = [_SHORT.sub("", d) for d in domains] + ["MEAN"]
    # Wide enough for the title at any number of columns; tight_layout keeps it unclipped.
    fig, ax = plt.subplots(figsize=(max(6.5, 1.6 + 0.55 * len(cols)), 1.6 + 0.42 * len(keys)))
    im = ax.imshow(
        grid, cmap="viridis_r", vmin=0, vmax=max(50.0, float(np.nanmax(grid))), aspect="auto"
    )
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    for i in range(len(keys)):
        for j in range(len(cols)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] > 35 else "black")  # fmt: skip
    cfg = results["config"]
    limit = "all" if cfg["limit"] is None else cfg["limit"]
    ax.set_title(f"CIFAR-10-C online error % — {cfg['model']}, {cfg['setting']}, sev {cfg['severity']}, "
                 f"batch {cfg['batch_size']}, {limit} images/domain", fontsize=9, wrap=True)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.03).set_label("error %", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
