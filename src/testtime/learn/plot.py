"""A plot of a training log: the TTRL per-step metrics against the step."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testtime.store import atomic_write_bytes

PANELS = (
    ("accuracy", ("label_acc", "reward_acc", "majority_ratio", "pass@1")),
    ("mean response length (tokens)", ("mean_length",)),
)


def plot_log(log: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Write a PNG of the per-step metrics under ``title`` (nothing for an empty log)."""
    if not log:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in log]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 3.6))
    for ax, (title, keys) in zip(axes, PANELS, strict=True):
        for key in keys:
            values = [row.get(key) for row in log]
            if all(v is not None for v in values):
                ax.plot(steps, values, label=key)
        ax.set_xlabel("step")
        ax.set_title(title)
        if title == "accuracy":
            ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
