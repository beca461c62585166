"""The method registry and what the CLI hands a method: :class:`LearnRequest`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from testtime.registry import Registry
from testtime.store import fingerprint, weights_hash
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import SealedTask, grading

# name -> run(request) -> metrics (the dict also written to DIR/metrics.json)
METHODS: Registry[dict[str, Any]] = Registry("learn method")

C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class LearnRequest:
    """One ``testtime learn`` run: the task and its held-out problems, where the
    model comes from and where results go, and the method's options.
    ``label_free``: the problems are sealed (:class:`testtime.tasks.labels.SealedTask`),
    so a method reading a gold label outside grading fails with LabelAccess."""

    method: str
    task: Task
    split: str
    problems: list[Problem]
    out: Path
    model_dir: Path
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    show_progress: bool = True
    label_free: bool = False
    # Generator options of methods that take a backend (dynamic-cheatsheet mode=curator).
    backend_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label_free and not isinstance(self.task, SealedTask):
            self.task = SealedTask(self.task)
            self.problems = self.task.seal_all(self.problems)

    def run_config(self, method_config: Any) -> dict[str, Any]:
        """What identifies the run (a DIR holding a different one is refused)."""
        with grading():  # the answers pin the problems' identity; no method reads them here
            answers = fingerprint([(p.prompt, p.answer) for p in self.problems])
        config = {
            "method": self.method,
            "task": self.task.name,
            "split": self.split,
            "problems": [p.id for p in self.problems],
            # ids alone do not pin the content (a task generator may change)
            "problems_fingerprint": answers,
            "model": str(self.model_dir.resolve()),
            # the path alone does not pin the weights (a retrained model in the same folder)
            "model_weights": weights_hash(self.model_dir),
            "seed": self.seed,
            "options": dataclasses.asdict(method_config)
            if dataclasses.is_dataclass(method_config)
            else method_config,
        }
        backend = {k: v for k, v in self.backend_options.items() if k != "api_key"}
        if backend:  # (absent when empty: runs made before the option keep resuming)
            config["backend_options"] = backend
        return config


def takes_options(kind: type, preset: dict[str, Any] | None = None, model: str | None = None) -> Callable[[F], F]:
    """Mark a method as configured by dataclass ``kind`` with ``preset`` overriding its
    defaults (read by ``testtime learn METHOD --help``); ``model`` names the shipped model
    (a folder of ``zoo/weights``) it runs on without ``--model`` (default: TinyReasoner).
    The method itself is unchanged."""

    def mark(method: F) -> F:
        method.config, method.preset = kind, dict(preset or {})  # type: ignore[attr-defined]
        method.model = model  # type: ignore[attr-defined]
        return method

    return mark


def build_config(kind: Callable[..., C], defaults: dict[str, Any], options: dict[str, Any], method: str) -> C:
    """``kind(**defaults | options)``; unknown option names are a clear error."""
    names = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"{method} has no option {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(names))}"
        )
    return kind(**{**defaults, **options})
