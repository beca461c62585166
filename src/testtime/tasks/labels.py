"""Gold labels and who may read them.

A method is *label-free* when it never reads a test problem's reference answer,
its step checks (the oracle process reward) or its true difficulty. Every result
row names the gold signals its method read, one of :data:`LABELS` (several are
joined with ``+``). Evaluation reads labels on purpose, inside :func:`grading`.

:class:`SealedTask` enforces this: it wraps a task and seals its test problems,
so that reading ``answer`` or ``difficulty`` of a sealed problem, or calling
``equivalent`` / ``is_correct`` / ``check_steps`` / ``solve`` on one, raises
:class:`LabelAccess` outside :func:`grading`. Problems the method generates
itself (a calibration split, synthetic training problems) stay unsealed: their
labels come from the task's generator, not from the test set.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from testtime.tasks.base import Problem, Task

LABELS = ("none", "oracle-verifier", "oracle-feedback", "gold-difficulty")

_GRADING: contextvars.ContextVar[bool] = contextvars.ContextVar("grading", default=False)


class LabelAccess(RuntimeError):
    """A method read a gold label of a sealed test problem outside grading."""


@contextmanager
def grading() -> Iterator[None]:
    """Evaluation: gold labels may be read inside this block."""
    token = _GRADING.set(True)
    try:
        yield
    finally:
        _GRADING.reset(token)


def labels_tag(signals: Iterable[str]) -> str:
    """The ``labels`` value of a result row: ``none`` or the gold signals read, joined by ``+``."""
    used = sorted({s for s in signals if s != "none"}, key=LABELS.index)
    for s in used:
        if s not in LABELS:
            raise ValueError(f"unknown label signal {s!r}; valid: {', '.join(LABELS)}")
    return "+".join(used) or "none"


def _guard(what: str) -> None:
    if not _GRADING.get():
        raise LabelAccess(f"a label-free method read {what} of a sealed test problem")


class SealedProblem(Problem):
    """A test problem whose ``answer`` and ``difficulty`` raise outside :func:`grading`."""

    @property  # type: ignore[override]
    def answer(self) -> str:
        _guard("the reference answer")
        return self.__dict__["_answer"]

    @answer.setter
    def answer(self, value: str) -> None:
        object.__setattr__(self, "_answer", value)

    @property  # type: ignore[override]
    def difficulty(self) -> int | None:
        _guard("the true difficulty")
        return self.__dict__["_difficulty"]

    @difficulty.setter
    def difficulty(self, value: int | None) -> None:
        object.__setattr__(self, "_difficulty", value)


def seal(problem: Problem) -> SealedProblem:
    with grading():
        return SealedProblem(
            problem.id, problem.prompt, problem.answer, problem.task, problem.difficulty, problem.meta
        )


class SealedTask(Task):
    """``task`` with the problems of ``generate(n, difficulty, seed)`` for the given test
    seed sealed (see the module docstring); everything label-free is delegated."""

    def __init__(self, task: Task, test_seed: int = 0) -> None:
        self.task = task
        self.test_seed = test_seed
        self.name = task.name
        self.levels = task.levels
        self.has_step_checker = task.has_step_checker
        self._test_prompts: set[str] = set()

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        problems = self.task.generate(n, difficulty, seed)
        if seed == self.test_seed:
            self._test_prompts.update(p.prompt for p in problems)
        return [seal(p) if p.prompt in self._test_prompts else p for p in problems]

    def seal_all(self, problems: Iterable[Problem]) -> list[Problem]:
        """``problems`` (the test set, from any seed) sealed, and their prompts sealed
        wherever ``generate`` produces them again."""
        problems = list(problems)
        self._test_prompts.update(p.prompt for p in problems)
        return [p if isinstance(p, SealedProblem) else seal(p) for p in problems]

    def _open(self, problem: Problem, what: str) -> Problem:
        if isinstance(problem, SealedProblem):
            _guard(what)
        return problem

    def extract_answer(self, solution: str) -> str | None:
        return self.task.extract_answer(solution)

    def answer_key(self, problem: Problem, answer: str) -> str:
        return self.task.answer_key(problem, answer)

    def equivalent(self, problem: Problem, answer: str) -> bool:
        return self.task.equivalent(self._open(problem, "answer correctness"), answer)

    def is_correct(self, problem: Problem, solution: str) -> bool:
        return self.task.is_correct(self._open(problem, "answer correctness"), solution)

    def check_steps(self, problem: Problem, solution: str) -> list[bool]:
        return self.task.check_steps(self._open(problem, "the step checks"), solution)

    def __getattr__(self, name: str) -> Any:
        if name == "task":  # not set yet (unpickling)
            raise AttributeError(name)
        attr = getattr(self.task, name)
        if name == "solve":  # the reference solver, for the task's own (unsealed) problems
            return lambda problem: attr(self._open(problem, "the reference solution"))
        return attr
