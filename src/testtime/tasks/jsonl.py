"""``jsonl``: the user's own problems, one JSON object per line.

Each line needs ``"id"``, ``"prompt"`` and ``"answer"``; an optional integer
``"difficulty"`` (default 0) groups problems into levels; other keys go to
``Problem.meta``. Answers are compared as numbers when both sides parse as
numbers (``"15"`` == ``"15.0"`` == ``"30/2"``), else as case-folded text with
whitespace collapsed. There is no step checker.

Loading is strict and bounded: every failure names ``file:line`` (bad UTF-8, bad
JSON, NaN/Infinity, a lone surrogate, a line over ``max_line_bytes``, nesting
deeper than ``MAX_DEPTH``); lines split on ``\n`` only, so U+2028 / U+0085 inside
a string are text, as JSON says.
"""

from __future__ import annotations

import json
import math
import random
import re
from fractions import Fraction
from pathlib import Path

from testtime.tasks.base import STEP_DELIMITER, Problem, Task

MAX_LINE_BYTES = 1 << 20  # 1 MiB per problem line
MAX_DEPTH = 64  # JSON nesting (objects and arrays) per line
MAX_INT_DIGITS = 100
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class JsonlTask(Task):
    name = "jsonl"
    has_step_checker = False

    def __init__(self, path: str | Path | None = None, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if path is None:
            raise ValueError(
                "task jsonl needs a file: give its path as the task (--task my_problems.jsonl),"
                ' one {"id", "prompt", "answer"} object per line'
            )
        if not isinstance(max_line_bytes, int) or max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be a positive integer, got {max_line_bytes!r}")
        self.path = Path(path)
        self.problems = _load(self.path, max_line_bytes)
        self.levels = tuple(sorted({p.difficulty for p in self.problems}))  # type: ignore[misc]

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        """``n`` problems of that level: all of them (file order) when there are at
        most ``n``, else a seeded random subset, kept in file order."""
        pool = [p for p in self.problems if p.difficulty == difficulty]
        if not pool:
            raise ValueError(
                f"{self.path}: no problems of difficulty {difficulty}; levels: {list(self.levels)}"
            )
        if n >= len(pool):
            return pool
        rng = random.Random(f"{self.name}-{difficulty}-{seed}")
        keep = set(rng.sample(range(len(pool)), n))
        return [p for i, p in enumerate(pool) if i in keep]

    def equivalent(self, problem: Problem, answer: str) -> bool:
        return normalize_answer(answer) == normalize_answer(problem.answer)

    def answer_key(self, problem: Problem, answer: str) -> str:
        return normalize_answer(answer)


def normalize_answer(answer: str) -> str:
    """Canonical text: a reduced number (``"15.0"`` -> ``"15"``, ``"0.5"`` -> ``"1/2"``)
    or case-folded, whitespace-collapsed text."""
    text = " ".join(answer.split()).casefold()
    try:
        value = Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return text
    return str(value)


def _load(path: Path, max_line_bytes: int) -> list[Problem]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such task file")
    problems, seen = [], set()
    try:
        f = path.open("rb")
    except OSError as err:  # e.g. no permission
        raise ValueError(f"{path}: cannot read the task file ({err.strerror})") from None
    with f:
        # Binary lines split on b"\n" only: U+2028 / U+0085 inside a JSON string stay in it.
        for lineno, raw in enumerate(iter(lambda: f.readline(max_line_bytes + 1), b""), 1):
            where = f"{path}:{lineno}"
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise ValueError(
                    f"{where}: line longer than {max_line_bytes:,} bytes (the limit; pass"
                    " max_line_bytes to raise it)"
                )
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            row = parse_line(raw, where)
            if row is None:
                continue
            problem = _problem(row, where)
            if problem.id in seen:
                raise ValueError(f"{where}: duplicate id {problem.id!r}")
            seen.add(problem.id)
            problems.append(problem)
    if not problems:
        raise ValueError(f"{path}: no problems")
    return problems


def parse_line(raw: bytes, where: str) -> dict | None:
    """One line's JSON object (None for a blank line), or a ValueError naming ``where``."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{where}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
        ) from None
    if not line.strip():
        return None
    if _too_deep(line):
        raise ValueError(f"{where}: JSON nested more than {MAX_DEPTH} levels deep")
    try:
        row = json.loads(
            line, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_short_int
        )
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
    except ValueError as err:  # NaN / Infinity, an overflowing float or a huge integer
        raise ValueError(f"{where}: invalid JSON ({err})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end].encode("unicode_escape").decode()
        raise ValueError(f"{where}: a string holds a lone surrogate ({bad}), not text") from None
    return row


def _too_deep(line: str) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH (checked before
    parsing, so a hostile line cannot exhaust the recursion limit); cheap unless the
    line holds many brackets."""
    if line.count("[") + line.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for m in _TOKENS.finditer(line):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif tok in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


def _problem(row: dict, where: str) -> Problem:
    missing = [k for k in ("id", "prompt", "answer") if k not in row]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    pid, prompt, answer = row.pop("id"), row.pop("prompt"), row.pop("answer")
    if not isinstance(pid, str | int) or isinstance(pid, bool) or str(pid) == "":
        raise ValueError(f"{where}: id must be a non-empty string or an integer")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: prompt must be a non-empty string")
    if not isinstance(answer, str | int | float) or isinstance(answer, bool):
        raise ValueError(f"{where}: answer must be a string or a number")
    difficulty = row.pop("difficulty", 0)
    if not isinstance(difficulty, int) or isinstance(difficulty, bool):
        raise ValueError(f"{where}: difficulty must be an integer")
    if not prompt.endswith(STEP_DELIMITER):  # the model continues on a new line
        prompt += STEP_DELIMITER
    return Problem(str(pid), prompt, str(answer), "jsonl", difficulty, meta=row)
