"""An ARC-like benchmark the project generates itself: a program is a composition of
grid primitives (flips, transpose, rotation, colour shift, cyclic shifts) on H x W
grids of C colours; a task shows ``k`` input-output pairs of one program and asks for
the output of a new input, checked exactly. Some two-step compositions are held out of
training (both primitives are seen, never that pair), the out-of-distribution split.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

PRIMITIVES = {
    "flip_h": lambda g, c: g[:, ::-1],
    "flip_v": lambda g, c: g[::-1, :],
    "transpose": lambda g, c: g.T,
    "rot90": lambda g, c: np.rot90(g),
    "recolor": lambda g, c: (g + 1) % c,
    "roll_right": lambda g, c: np.roll(g, 1, axis=1),
    "roll_down": lambda g, c: np.roll(g, 1, axis=0),
}
NAMES = tuple(PRIMITIVES)


def programs(depth: int = 2) -> list[tuple[str, ...]]:
    """Every composition of 1..depth primitives (applied left to right)."""
    return [p for d in range(1, depth + 1) for p in product(NAMES, repeat=d)]


def held_out(program: tuple[str, ...]) -> bool:
    """The out-of-distribution compositions: a fixed seventh of the distinct two-step pairs."""
    return (len(program) == 2 and program[0] != program[1]
            and (NAMES.index(program[0]) * 3 + NAMES.index(program[1])) % 7 == 0)


def run(program: tuple[str, ...], grid: np.ndarray, colors: int) -> np.ndarray:
    for name in program:
        grid = PRIMITIVES[name](grid, colors)
    return np.ascontiguousarray(grid)


@dataclass
class Task:
    program: tuple[str, ...]
    inputs: np.ndarray  # (k + 1, H, W): k examples, then the query
    outputs: np.ndarray  # (k + 1, H, W)

    def correct(self, prediction: np.ndarray) -> bool:
        return bool(np.array_equal(prediction, self.outputs[-1]))


STREAMS = ("train", "eval")  # training batches and evaluation tasks never share a grid stream


def sample_tasks(n: int, split: str, *, k: int = 3, size: int = 5, colors: int = 4,
                 seed: int = 0, stream: str = "train") -> list[Task]:
    """``n`` tasks of the ``"train"`` or ``"ood"`` (held-out compositions) split, from the
    ``"train"`` or ``"eval"`` stream of random grids."""
    if split not in ("train", "ood"):
        raise ValueError(f"split must be 'train' or 'ood', got {split!r}")
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {', '.join(STREAMS)}, got {stream!r}")
    pool = [p for p in programs() if held_out(p) == (split == "ood")]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, STREAMS.index(stream)])
    tasks = []
    for _ in range(n):
        program = pool[rng.integers(len(pool))]
        inputs = rng.integers(0, colors, size=(k + 1, size, size))
        outputs = np.stack([run(program, g, colors) for g in inputs])
        tasks.append(Task(program, inputs, outputs))
    return tasks
