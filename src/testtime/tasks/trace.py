"""The behaviour lines a step-structured solution may contain besides its steps
(the cognitive behaviours of Gandhi et al. 2025, "Cognitive Behaviors that Enable
Self-Improving Reasoners"), written with the embedded tokenizer's characters:

- ``check 10*2=20 ok`` — verification: the step above re-derived from the prompt,
  confirmed;
- ``check 10*2=20 wrong`` — backtracking: the step above was wrong; the line holds
  the redone step and the derivation continues from it. After ``wait`` (or at the
  start of a revision) check lines review the previous derivation step by step,
  keeping each step that re-derives the same;
- ``plan: 6 steps`` and ``done 3 of 6`` — subgoal setting (the number of steps, the
  first half as a subgoal);
- ``undo 15+5=20`` ... ``start 7 ok`` — backward chaining: from the result back to
  the start value by the inverse operations (``/`` undoes ``*``).

This module is the grammar only (format and parse); the step checker of
:class:`testtime.tasks.synthetic.SyntheticTask` says which lines are valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHECK = "check"
OK, WRONG = "ok", "wrong"
INVERSE = {"+": "-", "-": "+", "*": "/"}

_CHECK_RE = re.compile(rf"{CHECK} (\S+) ({OK}|{WRONG})")
_PLAN_RE = re.compile(r"plan: ([0-9]+) steps")
_DONE_RE = re.compile(r"done ([0-9]+) of ([0-9]+)")
_UNDO_RE = re.compile(r"undo ([0-9]+)([+\-/])([0-9]+)=([0-9]+)")
_START_RE = re.compile(r"start ([0-9]+) ok")


@dataclass(frozen=True)
class Line:
    """A parsed behaviour line: ``kind`` in check | plan | done | undo | start."""

    kind: str
    step: str = ""  # check: the (re-derived) step text
    verdict: str = ""  # check: ok | wrong
    numbers: tuple[int, ...] = ()  # plan (n), done (k, n), undo (a, b, c), start (v)
    op: str = ""  # undo: + - /


def check_line(step: object, ok: bool) -> str:
    return f"{CHECK} {step} {OK if ok else WRONG}"


def plan_line(n: int) -> str:
    return f"plan: {n} steps"


def done_line(k: int, n: int) -> str:
    return f"done {k} of {n}"


def undo_line(a: int, op: str, b: int, c: int) -> str:
    return f"undo {a}{op}{b}={c}"


def start_line(value: int) -> str:
    return f"start {value} ok"


def parse_line(line: str) -> Line | None:
    """The behaviour line ``line`` is, or None (a step, a cue, or anything else)."""
    line = line.strip()
    if m := _CHECK_RE.fullmatch(line):
        return Line("check", step=m.group(1), verdict=m.group(2))
    if m := _PLAN_RE.fullmatch(line):
        return Line("plan", numbers=(int(m.group(1)),))
    if m := _DONE_RE.fullmatch(line):
        return Line("done", numbers=(int(m.group(1)), int(m.group(2))))
    if m := _UNDO_RE.fullmatch(line):
        a, op, b, c = m.groups()
        return Line("undo", numbers=(int(a), int(b), int(c)), op=op)
    if m := _START_RE.fullmatch(line):
        return Line("start", numbers=(int(m.group(1)),))
    return None


def undo_value(a: int, op: str, b: int) -> int | None:
    """``a op b`` for the inverse operations (exact division only), else None."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b if a >= b else None
    if op == "/":
        return a // b if b and a % b == 0 else None
    return None
