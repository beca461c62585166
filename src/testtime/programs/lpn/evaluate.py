"""Exact-match accuracy of LPN's test-time search against search steps and FLOPs
(Macfarlane & Bonnet 2024, §5: more latent optimisation, better accuracy, most of all
out of distribution), on fresh tasks of the training compositions (in distribution)
and of the held-out compositions (out of distribution). The tasks come from the
evaluation stream of grids, which training never draws from. Each row is saved as it
finishes, so a killed evaluation resumes where it stopped. FLOPs are the search's
decoder passes per task (:mod:`.search`); the encoder pass and the query's decoding,
the same for every mode, are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from testtime.programs.lpn.grids import sample_tasks
from testtime.programs.lpn.model import LPN
from testtime.programs.lpn.search import MODES, search_batch
from testtime.store.atomic import atomic_write_json

SPLITS = ("train", "ood")


@dataclass(frozen=True)
class EvalConfig:
    search_steps: str = "0,1,5,20,50"  # search budgets (0: the mean latent, mode none)
    modes: str = "random,gradient,both"  # search modes spending the budgets
    tasks: int = 200  # evaluation tasks per split
    search_lr: float = 0.1  # gradient ascent's step size at test time
    eval_seed: int = 1  # seed of the evaluation tasks

    def __post_init__(self) -> None:
        self.budgets()
        unknown = set(self.mode_list()) - set(MODES[1:])
        if unknown or not self.mode_list():
            raise ValueError(f"modes must be some of {', '.join(MODES[1:])}, got {self.modes!r}")
        if self.tasks < 1:
            raise ValueError(f"tasks must be >= 1, got {self.tasks}")

    def budgets(self) -> list[int]:
        try:
            steps = sorted({int(s) for s in str(self.search_steps).split(",")})
        except ValueError:
            raise ValueError(f"search_steps must be comma-separated integers, got {self.search_steps!r}") from None
        if steps[0] < 0:
            raise ValueError(f"search steps must be >= 0, got {self.search_steps!r}")
        return steps

    def mode_list(self) -> list[str]:
        return [m.strip() for m in str(self.modes).split(",") if m.strip()]

    def cells(self) -> list[tuple[str, str, int]]:
        """Every (split, mode, steps) measured: mode none at budget 0, the others above."""
        return [(split, mode, steps) for split in SPLITS for steps in self.budgets()
                for mode in (["none"] if steps == 0 else self.mode_list())]


@dataclass
class SearchRow:
    split: str
    mode: str
    steps: int
    correct: int
    tasks: int
    flops: float  # mean search FLOPs per task
    log_likelihood: float  # mean over tasks, of the examples under the found latent

    @property
    def accuracy(self) -> float:
        return self.correct / self.tasks

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson 95% interval of the accuracy."""
        n, p = self.tasks, self.accuracy
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


def measure(model: LPN, split: str, mode: str, steps: int, cfg: EvalConfig) -> SearchRow:
    """One cell: search on each task's examples, then decode its query exactly."""
    m = model.config
    tasks = sample_tasks(cfg.tasks, split, size=m.size, colors=m.colors, seed=cfg.eval_seed,
                         stream="eval")
    x = torch.tensor(np.stack([t.inputs for t in tasks]))
    y = torch.tensor(np.stack([t.outputs for t in tasks]))
    found = search_batch(model, x[:, :-1], y[:, :-1], mode, steps, lr=cfg.search_lr, seed=cfg.eval_seed)
    with torch.no_grad():
        predicted = model.predict(x[:, -1], found.z).numpy()
    correct = sum(task.correct(p) for task, p in zip(tasks, predicted, strict=True))
    return SearchRow(split, mode, steps, correct, len(tasks), float(found.flops),
                     float(found.log_likelihood.mean()))


def evaluate(model: LPN, path: Path, cfg: EvalConfig, tag: dict,
             on_row: Callable[[SearchRow], None] | None = None) -> list[SearchRow]:
    """Every cell of ``cfg`` for ``model``, kept in ``path`` (JSON) as each finishes.
    Rows saved for the same ``tag`` (what identifies the weights) and settings are
    reused; any other file there is replaced."""
    key = {"tag": tag, "config": asdict(cfg)}
    rows: dict[tuple, SearchRow] = {}
    if path.exists():
        saved = json.loads(path.read_text())
        if {"tag": saved.get("tag"), "config": saved.get("config")} == key:
            for r in saved["rows"]:
                rows[(r["split"], r["mode"], r["steps"])] = SearchRow(**r)
    for cell in cfg.cells():
        if cell not in rows:
            rows[cell] = measure(model, *cell, cfg)
            atomic_write_json(path, {**key, "rows": [asdict(r) for r in rows.values()]})
        if on_row is not None:
            on_row(rows[cell])
    return [rows[cell] for cell in cfg.cells()]
