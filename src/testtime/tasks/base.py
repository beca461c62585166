"""Task interface: problems with exact answers and step-structured solutions.

A solution is a sequence of steps, one per line, followed by a final line
``answer: <value>``. The embedded TinyReasoner is trained on exactly this
format, and step-level verifiers and search split solutions on ``STEP_DELIMITER``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

STEP_DELIMITER = "\n"
ANSWER_PREFIX = "answer:"

# Cues the embedded TinyReasoner was trained to follow (the contract for
# sequential test-time strategies):
# - WAIT_CUE (budget forcing, s1): cut a solution before its ``answer:`` line and
#   append WAIT_CUE; the model then re-derives the solution from the start and
#   only then writes the answer line.
# - REVISE_PREFIX (self-refinement): after a complete attempt (steps + answer
#   line) append ``"revise\n"`` (no feedback) or ``"revise step j\n"`` (1-based
#   index of the first wrong step, e.g. from a verifier); the model then writes a
#   complete corrected solution, whose answer line is the last one in the text.
WAIT_CUE = "wait\n"
REVISE_PREFIX = "revise"


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str  # what the model is conditioned on, ends with STEP_DELIMITER
    answer: str  # canonical reference answer
    task: str
    difficulty: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def split_steps(solution: str) -> list[str]:
    """Non-empty reasoning lines of a solution, excluding the answer line."""
    steps = []
    for line in solution.split(STEP_DELIMITER):
        line = line.strip()
        if not line:
            continue
        if line.startswith(ANSWER_PREFIX):
            break
        steps.append(line)
    return steps


def extract_final_answer(solution: str) -> str | None:
    """The value after the *last* ``answer:`` marker (revisions may restate it)."""
    idx = solution.rfind(ANSWER_PREFIX)
    if idx < 0:
        return None
    value = solution[idx + len(ANSWER_PREFIX) :].split(STEP_DELIMITER, 1)[0].strip()
    return value or None


class Task(ABC):
    """A family of problems with a deterministic generator and exact checking."""

    name: str
    levels: tuple[int, ...]  # the difficulty values reported by default
    has_step_checker: bool = True

    @abstractmethod
    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        """``n`` problems of the given difficulty; same seed, same problems."""

    def extract_answer(self, solution: str) -> str | None:
        return extract_final_answer(solution)

    @abstractmethod
    def equivalent(self, problem: Problem, answer: str) -> bool:
        """Whether an extracted answer is correct for ``problem``."""

    def is_correct(self, problem: Problem, solution: str) -> bool:
        answer = self.extract_answer(solution)
        return answer is not None and self.equivalent(problem, answer)

    def answer_key(self, problem: Problem, answer: str) -> str:
        """Canonical form used to group equivalent answers when voting."""
        return answer.strip()

    def check_steps(self, problem: Problem, solution: str) -> list[bool]:
        """Oracle process reward: validity of each step of ``solution``."""
        raise NotImplementedError(f"task {self.name!r} has no step checker")
