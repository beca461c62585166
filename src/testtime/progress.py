"""Progress on stderr that also reaches a log: a live rich bar on a terminal, plain
lines otherwise (piped, redirected, CI), at most one per ``interval`` seconds or 10%.

``make_progress(*columns, disable=..., transient=...)`` is a drop-in for
``rich.progress.Progress(...)``; the plain form implements the part of its API the
long runs use (``add_task``, ``advance``, ``update``, ``remove_task``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    started: float = 0.0
    last_line: float = 0.0
    last_tenth: int = 0
    shown: float = 0.0  # ``completed`` at the last line
    note: str = ""  # a live summary (the ``note`` field of rich's tasks)
    initial: float = 0.0  # done before this run (a resume): not in the rate


class PlainProgress:
    """Progress as lines: ``scale arith: 120/400 (30%), 0:00:42 elapsed, ~0:01:38 left``."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks.values():
            if task.completed != task.shown:
                self._line(task)

    def add_task(
        self, description: str, total: float | None = None, completed: float = 0, **fields: Any
    ) -> int:
        now = self.clock()
        key = len(self.tasks)
        tenth = int(10 * completed / total) if total else 0
        self.tasks[key] = _Task(
            description.strip(), total, completed, started=now, last_line=now, last_tenth=tenth,
            shown=completed, note=str(fields.get("note", "")), initial=completed,
        )
        return key

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self,
        task_id: int,
        *,
        advance: float | None = None,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if "note" in fields:
            task.note = str(fields["note"])
        if total is not None:
            task.total = total
        if description is not None:
            task.description = description.strip()
        if completed is not None:
            task.completed = completed
        if advance:
            task.completed += advance
        now = self.clock()
        tenth = int(10 * task.completed / task.total) if task.total else 0
        finished = bool(task.total) and task.completed >= task.total
        if finished or tenth > task.last_tenth or now - task.last_line >= self.interval:
            self._line(task)

    def remove_task(self, task_id: int) -> None:
        task = self.tasks.pop(task_id)
        if task.completed != task.shown:
            self._line(task)

    def _line(self, task: _Task) -> None:
        now = self.clock()
        elapsed = now - task.started
        text = f"{task.description}: {task.completed:.0f}"
        if task.total:
            share = min(1.0, task.completed / task.total)
            text += f"/{task.total:.0f} ({100 * share:.0f}%), {_clock(elapsed)} elapsed"
            done_here = task.completed - task.initial
            if share < 1 and done_here > 0:
                text += f", ~{_clock(elapsed * (task.total - task.completed) / done_here)} left"
            task.last_tenth = int(10 * share)
        else:
            text += f", {_clock(elapsed)} elapsed"
        if task.note:
            text += f"  {task.note}"
        task.last_line, task.shown = now, task.completed
        print(text, file=self.stream, flush=True)


def make_progress(*columns: Any, disable: bool = False, transient: bool = False, **kwargs: Any):
    """A rich ``Progress`` on stderr when it is a terminal, else :class:`PlainProgress`
    (nothing at all with ``disable``)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if disable or console.is_terminal:
        return Progress(*columns, console=console, disable=disable, transient=transient, **kwargs)
    return PlainProgress(sys.stderr)
