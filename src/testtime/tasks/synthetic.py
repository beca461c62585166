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
from testtime.tasks.trace import INVERSE, OK, Line, parse_line, undo_value

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
        A ``wait`` line restarts the derivation and is itself valid; behaviour
        lines (:mod:`testtime.tasks.trace`) are valid when what they say is true."""
        return [valid for valid, _ in self.trace_steps(problem, solution)]

    def track_steps(self, problem: Problem, solution: str) -> list[bool]:
        """Per line: the derivation in effect after it is free of errors (a wrong step
        that a ``check ... wrong`` line redid, or a ``wait`` left behind, no longer counts)."""
        return [on_track for _, on_track in self.trace_steps(problem, solution)]

    def trace_steps(self, problem: Problem, solution: str) -> list[tuple[bool, bool]]:
        """(valid, on track) of every reasoning line of ``solution``."""
        out: list[tuple[bool, bool]] = []
        # The current derivation: (state before, step in effect, valid) per position.
        entries: list[tuple[Any, Step, bool]] = []
        previous: list[Step] | None = None  # the derivation a wait left behind
        state, after_step = self._initial_state(problem), False
        undo: tuple[int, int | None] | None = None
        for line in split_steps(solution):
            valid, was_step = False, False
            if line == WAIT_CUE.strip():
                valid, previous, entries = True, [e[1] for e in entries], []
                state, undo = self._initial_state(problem), None
            elif (step := parse_step(line)) is not None:
                legal, new_state = self._check_step(problem, state, len(entries), step)
                valid, was_step = legal and step.correct, True
                entries.append((state, step, valid))
                state = new_state
            elif (b := parse_line(line)) is not None:
                valid, state, undo = self._check_behaviour(problem, b, entries, previous, state, after_step, undo)
            out.append((valid, valid and all(e[2] for e in entries)))
            after_step = was_step
        return out

    def _check_behaviour(
        self,
        problem: Problem,
        line: Line,
        entries: list[tuple[Any, Step, bool]],
        previous: list[Step] | None,
        state: Any,
        after_step: bool,
        undo: tuple[int, int | None] | None,
    ) -> tuple[bool, Any, tuple[int, int | None] | None]:
        """Whether a behaviour line is true; (valid, state, backward value) after it."""
        n_steps = len(self.derive(problem)[0])
        if line.kind == "check":
            step = parse_step(line.step)
            if step is None:
                return False, state, undo
            # Right after a step it re-derives that step; elsewhere (after wait, in a
            # revision) it re-derives the next one, reviewing an earlier derivation.
            p = len(entries) - 1 if after_step else len(entries)
            before = entries[p][0] if after_step else state
            legal, new_state = self._check_step(problem, before, p, step)
            ok = legal and step.correct
            if after_step:
                same = step == entries[p][1]
            elif previous is not None and p < len(previous):
                same = step == previous[p]
            else:
                same = line.verdict == OK  # nothing in the text to compare with
            valid = ok and same == (line.verdict == OK)
            if after_step and line.verdict == OK:
                return valid, state, undo
            entry = (before, step, ok)
            if after_step:
                entries[p] = entry
            else:
                entries.append(entry)
            return valid, new_state, undo
        if line.kind == "plan":
            return not entries and line.numbers == (n_steps,), state, undo
        if line.kind == "done":
            return line.numbers == (len(entries), n_steps), state, undo
        if line.kind == "undo":  # undo = (position undone last, value reached)
            a, b, c = line.numbers
            k, value = (len(entries), entries[-1][1].result if entries else None) if undo is None else undo
            if k < 1:
                return False, state, undo
            step = entries[k - 1][1]
            ok = (a, line.op, b) == (value, INVERSE[step.op], step.right) and undo_value(a, line.op, b) == c
            return ok, state, (k - 1, c)
        # start: the backward chain undid every step and reached the first step's left value
        first = entries[0][1].left if entries else None
        ok = undo is not None and undo == (0, first) and line.numbers == (first,)
        return ok, state, None


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
