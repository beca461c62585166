"""What every test-time learning method shares: problem splits, up-front checks
(verifiable answers, a generator for training data, memory), the run directory
(config check, atomic checkpoints, JSONL log, final metrics) and evaluation.

Layout of a run directory ``DIR``::

    runstore.sqlite   the run's config (a DIR holding another config is an error)
                      and, for per-problem methods, one stored result per problem
    checkpoint.pt     trainer state every ``checkpoint_every`` steps (atomic)
    log.jsonl         one line per step (rewritten atomically with the state)
    model/            the adapted weights (never the shipped model's directory)
    metrics.json      before/after evaluation and the run summary (written last)
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from testtime.cluster import resumable_map
from testtime.scale.common import derive_seed
from testtime.store import (
    RunStore,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import grading

TEST_SEED = 0  # the held-out problems methods are evaluated on (TinyReasoner never saw them)
TRAIN_SEED = 7_000_000  # training problems for methods that fine-tune on a task's generator


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN/inf; the last good weights are kept."""


def parse_split(text: str) -> list[int]:
    """``"8-12"`` -> [8..12], ``"4,6"`` -> [4, 6], ``"6"`` -> [6]."""
    levels: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            levels += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError:
        raise ValueError(f"--split must look like 8-12 or 4,6,8 (difficulty levels), got {text!r}") from None
    if not levels:
        raise ValueError(f"--split {text!r} names no difficulty level")
    return sorted(set(levels))


def make_problems(task: Task, levels: Sequence[int], n: int, seed: int) -> list[Problem]:
    """``n`` problems spread round-robin over ``levels`` (same seed, same problems)."""
    if n < 1:
        raise ValueError(f"the number of problems must be >= 1, got {n}")
    per = [n // len(levels) + (i < n % len(levels)) for i in range(len(levels))]
    out = []
    for level, k in zip(levels, per, strict=True):
        if k:
            out += task.generate(k, level, seed)
    return out


def require_answers(task: Task, problems: Sequence[Problem], method: str) -> None:
    """Evaluation (and oracle rewards) need a reference answer for every problem."""
    with grading():
        missing = [p.id for p in problems if not str(p.answer).strip()]
    if missing:
        raise ValueError(
            f"{method} needs verifiable answers, but {len(missing)} problem(s) of task "
            f"{task.name!r} have none (e.g. {missing[0]!r})"
        )


def require_generator(task: Task, method: str) -> Any:
    """Methods that train on generated problems need the task's reference solver."""
    if not callable(getattr(task, "solve", None)):
        raise ValueError(
            f"{method} trains on generated problems with reference solutions; task "
            f"{task.name!r} has no generator/solver (use arith, countdown or mul)"
        )
    return task


def check_memory(
    num_params: int,
    n_layer: int,
    n_embd: int,
    vocab: int,
    batch: int,
    seq: int,
    *,
    limit_bytes: int | None = None,
    what: str = "the configured batch",
) -> int:
    """Refuse before training when ``batch × seq`` activations plus weights, grads and
    Adam state would not fit. Estimate (fp32): params × 4 copies (weights, grads, 2
    Adam moments) + batch × seq × (n_layer × 20 × n_embd + 2 × vocab) floats of
    saved activations (attention, MLP 4×, norms; the logits and their softmax)."""
    need = 4 * (4 * num_params + batch * seq * (n_layer * 20 * n_embd + 2 * vocab))
    limit = limit_bytes if limit_bytes is not None else available_memory() * 3 // 4
    if need > limit:
        raise ValueError(
            f"{what} ({batch} sequences × {seq} tokens) needs about {need / 2**30:.1f} GiB "
            f"for training, more than the {limit / 2**30:.1f} GiB allowed; lower the batch "
            "(prompts_per_step, n_samples) or max_tokens"
        )
    return need


def available_memory() -> int:
    """Available RAM in bytes (``MemAvailable``), falling back to total physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def vote_keys(task: Task, problem: Problem, texts: Sequence[str]) -> list[str | None]:
    """The answer key of each solution (None when it has no answer line)."""
    keys: list[str | None] = []
    for text in texts:
        answer = task.extract_answer(text)
        keys.append(None if answer is None else task.answer_key(problem, answer))
    return keys


def majority(keys: Sequence[str | None]) -> tuple[str | None, float]:
    """The most frequent answer key (first seen wins ties) and its share of *all*
    samples (abstentions count against it, as in TTRL's majority ratio)."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, 0.0
    best = max(counts, key=lambda k: (counts[k], -keys.index(k)))
    return best, counts[best] / len(keys)


def key_correct(task: Task, problem: Problem, key: str | None) -> bool:
    """Grading (reads the label): for evaluation and logging only, never for a method's choices."""
    with grading():
        return key is not None and task.equivalent(problem, key)


@dataclass
class Evaluation:
    """Sampled accuracy on a fixed problem set: pass@1 (mean over samples), maj@n,
    per-problem correct counts (for pass@k curves) and the mean length in tokens."""

    pass1: float
    maj: float
    correct: list[int]
    n: int
    mean_length: float

    def to_json(self) -> dict[str, Any]:
        return {
            "pass@1": self.pass1,
            f"maj@{self.n}": self.maj,
            "n": self.n,
            "mean_length": self.mean_length,
            "correct": self.correct,
        }


@torch.no_grad()
def evaluate(
    policy: Any,
    task: Task,
    problems: Sequence[Problem],
    *,
    n: int,
    temperature: float,
    max_tokens: int,
    seed: int,
) -> Evaluation:
    """Sample ``n`` solutions per problem with the policy's lean sampler (labels used here only)."""
    rows, _ = policy.rollouts(
        [policy.encode_prompt(p.prompt) for p in problems],
        n,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=derive_seed(seed, "eval"),
    )
    correct, maj, lengths = [], 0, []
    for problem, row in zip(problems, rows, strict=True):
        texts = [r.text for r in row]
        with grading():
            correct.append(sum(task.is_correct(problem, t) for t in texts))
        maj += key_correct(task, problem, majority(vote_keys(task, problem, texts))[0])
        lengths += [r.length for r in row]
    return Evaluation(
        pass1=sum(correct) / (n * len(problems)),
        maj=maj / len(problems),
        correct=correct,
        n=n,
        mean_length=sum(lengths) / len(lengths),
    )


class RunDir:
    """A method's output directory: config check, checkpoints, log, metrics, model."""

    def __init__(self, out: str | Path, config: dict[str, Any], source_model: Path) -> None:
        self.path = Path(out)
        if self.path.resolve() == Path(source_model).resolve() or self.path.resolve() in Path(
            source_model
        ).resolve().parents:
            raise ValueError(
                f"--out {self.path} would write over the model it starts from ({source_model}); "
                "choose another directory"
            )
        self.store = RunStore(self.path, json.loads(json.dumps(config)))
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.log_path = self.path / "log.jsonl"
        self.metrics_path = self.path / "metrics.json"
        self.model_path = self.path / "model"

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)

    def save_checkpoint(self, state: dict[str, Any], log: Sequence[dict[str, Any]]) -> None:
        """State then log, each atomically; the log never runs ahead of the state."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())
        self.write_log(log)

    def write_log(self, log: Sequence[dict[str, Any]]) -> None:
        atomic_write_text(self.log_path, "".join(json.dumps(row) + "\n" for row in log))

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        atomic_write_json(self.metrics_path, metrics)
        return metrics

    def close(self) -> None:
        self.store.close()


def finite(value: float | torch.Tensor) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(value)


@contextmanager
def progress_bar(description: str, total: int, done: int = 0, *, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar (plain lines when stderr is not a terminal); ``advance(k)``
    moves it, ``note(text)`` shows live metrics."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from testtime.progress import make_progress

    with make_progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        disable=not enabled,
        transient=False,
    ) as bar:
        tid = bar.add_task(description, total=total, completed=done, note="")

        class _Handle:
            def advance(self, k: int = 1) -> None:
                bar.advance(tid, k)

            def note(self, text: str) -> None:
                bar.update(tid, note=text)

        yield _Handle()


def solve_each(
    run: RunDir, request: Any, solve: Callable[[Problem], dict[str, Any]], description: str
) -> list[dict[str, Any]]:
    """``solve`` every problem of the request, one stored result per problem (a killed
    run resumes after the last stored problem)."""
    by_id = {p.id: p for p in request.problems}
    with progress_bar(
        description, len(by_id), sum(k in run.store for k in by_id), enabled=request.show_progress
    ) as bar:

        # Per-instance methods: problems are independent, so they may run as Ray tasks
        # (inside a testtime.cluster.ray_session); progress stays on the driver.
        return resumable_map(
            run.store, list(by_id), lambda key: solve(by_id[key]), on_done=lambda _k: bar.advance()
        )
