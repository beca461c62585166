"""Shared machinery of the generated arithmetic task families (arith, countdown, mul).

Every step of their solutions is one binary operation ``a<op>b=c`` on
non-negative integers. Each family says which operations are legal next (its
``_check_step``) and how to derive a reference solution, optionally with an
injected mistake that later steps propagate (training data for self-correction).
"""

from __future__ import annotations

import random
import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testtime.tasks.base import ANSWER_PREFIX, WAIT_CUE, Problem, Task, split_steps

_STEP_RE = re.compile(r"([0-9]+)([+\-*])([0-9]+)=([0-9]+)")
_NUM_RE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Step:
    left: int
    op: str
    right: int
    result: int

    def __str__(self) -> str:
        return f"{self.left}{self.op}{self.right}={self.result}"

    @property
    def correct(self) -> bool:
        return apply_op(self.left, self.op, self.right) == self.result


def apply_op(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def parse_int(text: str) -> int | None:
    """A canonical non-negative integer (no sign, no leading zeros), else None."""
    text = text.strip()
    return int(text) if _NUM_RE.fullmatch(text) else None


def parse_step(line: str) -> Step | None:
    """``"12+30=42"`` -> Step; None for anything else (never eval)."""
    m = _STEP_RE.fullmatch(line.strip())
    if m is None:
        return None
    a, op, b, c = m.groups()
    if any(parse_int(x) is None for x in (a, b, c)):
        return None
    return Step(int(a), op, int(b), int(c))


def perturb(value: int, rng: random.Random) -> int:
    """A plausible wrong value: one digit changed, or off by a small amount."""
    digits = str(value)
    for _ in range(20):
        if rng.random() < 0.5:
            i = rng.randrange(len(digits))
            d = rng.choice([c for c in "0123456789" if c != digits[i]])
            wrong = int(digits[:i] + d + digits[i + 1 :])
        else:
            wrong = value + rng.choice([-1, 1]) * rng.randint(1, 10)
        if wrong >= 0 and wrong != value:
            return wrong
    return value + 1


class SyntheticTask(Task):
    """A generated family whose solutions are chains of ``a<op>b=c`` steps."""

    def solve(self, problem: Problem) -> str:
        """The reference solution: step lines, then ``answer: <value>``."""
        steps, answer = self.derive(problem)
        return format_solution(steps, answer)

    @abstractmethod
    def derive(self, problem: Problem) -> tuple[list[Step], str]:
        """The reference steps and answer."""

    @abstractmethod
    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[Step], str, int | None]:
        """A plausible wrong attempt: (steps, answer, index of its first wrong
        step, or None when every step is valid and only the answer is wrong)."""

    def equivalent(self, problem: Problem, answer: str) -> bool:
        """Integer answers (countdown overrides this)."""
        return parse_int(answer) == parse_int(problem.answer)

    def answer_key(self, problem: Problem, answer: str) -> str:
        value = parse_int(answer)
        return answer.strip() if value is None else str(value)

    @abstractmethod
    def _initial_state(self, problem: Problem) -> Any:
        """What the first step may build on (parsed from the prompt)."""

    @abstractmethod
    def _check_step(self, problem: Problem, state: Any, index: int, step: Step) -> tuple[bool, Any]:
        """Whether ``step`` is a legal next step from ``state``, and the state after it."""

    def check_steps(self, problem: Problem, solution: str) -> list[bool]:
        """Each step must parse, be arithmetically right and legal given the
        problem and the steps *as written* before it (so only the step that
        introduces a mistake is flagged, not the ones carrying it forward).
        A ``wait`` line restarts the derivation and is itself valid."""
        valid: list[bool] = []
        state, index = self._initial_state(problem), 0
        for line in split_steps(solution):
            if line == WAIT_CUE.strip():
                valid.append(True)
                state, index = self._initial_state(problem), 0
                continue
            step = parse_step(line)
            if step is None:
                valid.append(False)
                continue
            ok, state = self._check_step(problem, state, index, step)
            valid.append(ok and step.correct)
            index += 1
        return valid


def corrupt_one_step(
    derive: Callable[..., tuple[list[Step], str]], problem: Problem, rng: random.Random
) -> tuple[list[Step], str, int]:
    """Inject one wrong result at a random step; ``derive(problem, error_at, rng)``
    propagates it through the later steps (as a model carrying a slip would)."""
    j = rng.randrange(len(derive(problem)[0]))
    steps, answer = derive(problem, error_at=j, rng=rng)
    return steps, answer, j


def format_solution(steps: list[Step], answer: str) -> str:
    return "".join(f"{s}\n" for s in steps) + f"{ANSWER_PREFIX} {answer}\n"


def prompt_body(problem: Problem, task: str) -> str:
    """The text after ``"<task>: "`` in a prompt; a clear error for a foreign prompt."""
    head = f"{task}: "
    if not problem.prompt.startswith(head):
        raise ValueError(f"not a {task} prompt: {problem.prompt!r}")
    return problem.prompt[len(head) :].strip()
