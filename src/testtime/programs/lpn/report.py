"""A trained LPN's report: the training curve in a few rows, the accuracy table (search
mode x steps, in and out of distribution, Wilson intervals) and the accuracy against
search steps and against search FLOPs as a figure."""

from __future__ import annotations

import statistics
from pathlib import Path

from testtime.programs.lpn.evaluate import SearchRow
from testtime.store.atomic import atomic_write_text

SPLIT_NAMES = {"train": "in distribution", "ood": "out of distribution"}


def table(rows: list[SearchRow]) -> list[str]:
    lines = ["| split | mode | search steps | accuracy | 95% CI | FLOPs / task |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r.interval()
        lines.append(f"| {SPLIT_NAMES[r.split]} | {r.mode} | {r.steps} | {r.accuracy:.3f} | "
                     f"[{lo:.3f}, {hi:.3f}] | {r.flops:.3g} |")
    return lines


def training_rows(log: list[dict], points: int = 8) -> list[str]:
    """The median loss over windows ending at ``points`` evenly spaced steps, and how many
    steps of each window spiked (loss over 10x the median): a mean would let one spiking
    batch (loss 1.4e6 at step 24,578 of the shipped run, recovered at once) hide the window."""
    if not log:
        return []
    lines = ["| step | loss (median) | query recon (nats, median) | KL (median) | spikes | minutes |",
             "|---|---|---|---|---|---|"]
    width = max(1, len(log) // points)
    for end in range(width, len(log) + 1, width):
        window = log[end - width:end]
        mid = {k: statistics.median(r[k] for r in window) for k in ("loss", "recon", "kl")}
        spikes = sum(r["loss"] > 10 * mid["loss"] for r in window)
        lines.append(f"| {end} | {mid['loss']:.3f} | {mid['recon']:.3f} | {mid['kl']:.2f} | {spikes} | "
                     f"{window[-1]['seconds'] / 60:.1f} |")
    return lines


def plot(rows: list[SearchRow], path: Path) -> None:
    """Accuracy against search steps (left) and search FLOPs (right), one line per
    mode and split; every mode starts from the budget-0 point (the mean latent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    base = {r.split: r for r in rows if r.mode == "none"}
    for split, style in (("train", "-"), ("ood", "--")):
        for colour, mode in enumerate(sorted({r.mode for r in rows} - {"none"})):
            line = [base[split]] if split in base else []
            line += sorted((r for r in rows if r.split == split and r.mode == mode), key=lambda r: r.steps)
            label = f"{mode}, {SPLIT_NAMES[split]}"
            kw = {"color": f"C{colour}", "marker": "o", "label": label}  # a mode's colour, a split's line
            axes[0].plot([r.steps for r in line], [r.accuracy for r in line], style, **kw)
            flops = [(r.flops, r.accuracy) for r in line if r.flops > 0]
            if flops:  # budget 0 costs no search: off a log axis
                axes[1].plot(*zip(*flops, strict=True), style, **kw)
    axes[0].set_xscale("symlog", linthresh=1)
    axes[0].set_xlabel("search steps")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("search FLOPs per task")
    axes[0].set_ylabel("exact-match accuracy")
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.suptitle("LPN test-time latent search")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, rows: list[SearchRow], log: list[dict], tasks: int,
                 weights: str = "") -> Path:
    """``out/report.md`` and ``out/search_curve.png`` (of the run trained in ``out``, or
    of the given ``weights``); the report's path."""
    plot(rows, out / "search_curve.png")
    title = f"weights {weights}" if weights else f"{len(log)} training steps"
    text = [f"# LPN: test-time latent search ({title})", ""]
    if log:
        text += ["## Training", "", *training_rows(log), ""]
    text += [f"## Accuracy ({tasks} fresh tasks per split)", "", *table(rows), "",
             "![accuracy against search steps and FLOPs](search_curve.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(text))
    return out / "report.md"
