"""``freeform``: problems that arrive as raw prompts (e.g. chat requests to
``testtime serve``), with no generator and usually no reference answer.

Answers are read from the ``answer:`` line convention and grouped for voting
like ``jsonl`` answers (numbers by value, text case-folded with whitespace
collapsed). A problem whose reference answer is empty is never judged correct.
"""

from __future__ import annotations

from testtime.tasks.base import Problem, Task
from testtime.tasks.jsonl import normalize_answer


class FreeformTask(Task):
    name = "freeform"
    levels = ()
    has_step_checker = False

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        raise ValueError("task 'freeform' has no problem generator; its problems come from prompts")

    def problem(self, problem_id: str, prompt: str, answer: str = "") -> Problem:
        """A problem for ``prompt`` (answer unknown unless given)."""
        return Problem(id=problem_id, prompt=prompt, answer=answer, task=self.name)

    def equivalent(self, problem: Problem, answer: str) -> bool:
        return bool(problem.answer) and normalize_answer(answer) == normalize_answer(problem.answer)

    def answer_key(self, problem: Problem, answer: str) -> str:
        return normalize_answer(answer)
