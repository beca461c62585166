"""An open optimisation problem whose candidate solutions are programs.

A candidate is Python source defining the problem's ``entry`` function; the sandbox
runs it and returns its JSON value, and :meth:`Problem.check` scores that value in
the parent process (the candidate never scores itself). A problem in another
``language`` (the embedded model's task language) scores the answer text itself and
supplies its own prompt (``prompt_for``) and answer reader (``read``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


class Invalid(ValueError):
    """A returned solution that breaks the problem's constraints (the reason is the message)."""


@dataclass(frozen=True)
class Problem(ABC):
    language: ClassVar[str] = "python"
    name: str
    description: str  # what the program must compute (the prompt's task statement)
    entry: str  # the function the program defines and the sandbox calls
    maximize: bool
    best_known: float  # the literature's best score, for reports only
    score_range: tuple[float, float]  # [A, B] of ThetaEvolve's reward shaping

    @abstractmethod
    def check(self, value: Any) -> tuple[float, dict[str, Any]]:
        """The exact score of a program's returned ``value`` and details; raise
        :class:`Invalid` with the reason when it breaks a constraint."""

    @property
    @abstractmethod
    def baseline(self) -> str:
        """A simple correct program (the initial population)."""

    def fitness(self, score: float) -> float:
        """Higher is better whichever way the problem points."""
        return score if self.maximize else -score
