"""``jsonl``: the user's own problems, one JSON object per line.

Each line needs ``"id"``, ``"prompt"`` and ``"answer"``; an optional integer
``"difficulty"`` (default 0) groups problems into levels; other keys go to
``Problem.meta``. Answers are compared as numbers when both sides parse as
numbers (``"15"`` == ``"15.0"`` == ``"30/2"``), else as case-folded text with
whitespace collapsed. There is no step checker.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

from testtime.tasks.base import STEP_DELIMITER, Problem, Task


class JsonlTask(Task):
    name = "jsonl"
    has_step_checker = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.problems = _load(self.path)
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


def _load(path: Path) -> list[Problem]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such task file")
    problems, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: invalid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("id", "prompt", "answer") if k not in row]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        pid, prompt, answer = str(row.pop("id")), row.pop("prompt"), row.pop("answer")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where}: prompt must be a non-empty string")
        if not isinstance(answer, str | int | float) or isinstance(answer, bool):
            raise ValueError(f"{where}: answer must be a string or a number")
        difficulty = row.pop("difficulty", 0)
        if not isinstance(difficulty, int) or isinstance(difficulty, bool):
            raise ValueError(f"{where}: difficulty must be an integer")
        if pid in seen:
            raise ValueError(f"{where}: duplicate id {pid!r}")
        seen.add(pid)
        if not prompt.endswith(STEP_DELIMITER):  # the model continues on a new line
            prompt += STEP_DELIMITER
        problems.append(Problem(pid, prompt, str(answer), "jsonl", difficulty, meta=row))
    if not problems:
        raise ValueError(f"{path}: no problems")
    return problems
