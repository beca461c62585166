"""The text-environment protocol every agent task implements (gym-like).

``reset(seed)`` starts an episode and returns the first observation (the task
included); ``step(action)`` takes the policy's action as raw text and returns a
:class:`Step`. An action the environment cannot parse is not an error: it comes
back as an observation (``invalid action: ...``), costs a step, and the episode
goes on. Environments are deterministic given the seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from testtime.registry import Registry


@dataclass
class Step:
    """What one action did: the next observation, its reward, and whether the episode ended."""

    observation: str
    reward: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Environment(ABC):
    """A seeded, text-in/text-out environment."""

    name: str = "environment"

    @property
    @abstractmethod
    def action_help(self) -> str:
        """The action grammar, shown to the policy once per prompt."""

    @abstractmethod
    def reset(self, seed: int) -> str:
        """Start the episode of ``seed``; returns the first observation (task and start page)."""

    @abstractmethod
    def step(self, action: str) -> Step:
        """Apply one action (raw text); never raises on a bad action."""

    def is_answer(self, action: str) -> bool:
        """Whether ``action`` is a final answer (where a "check again" cue may intercept it)."""
        return False

    def describe(self) -> dict[str, Any]:
        """What this environment is (its name and knobs): a run's config records it."""
        return {"name": self.name}


ENVIRONMENTS: Registry[Environment] = Registry("environment")
