"""Policies: what picks the next action from the trajectory so far.

:class:`GeneratorPolicy` runs any :class:`~testtime.backends.base.Generator`
(the embedded model, an OpenAI-compatible upstream, vLLM) as a ReAct-style
policy: the prompt is the action grammar, the task, the last ``window`` turns
and the current observation; the model thinks within ``step_tokens`` tokens
(the per-step reasoning budget) and ends with ``Action: ...``. The action is
the last such line; without one, the output's first line goes to the
environment as is (it will answer ``invalid action: ...``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from testtime.backends.base import Generator, SamplingParams, Usage

ACTION_LINE = re.compile(r"^\s*action\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass
class Turn:
    thought: str
    action: str
    observation: str


@dataclass
class Trajectory:
    """The episode so far: the first observation (with the task) and the turns since."""

    first: str
    action_help: str
    turns: list[Turn] = field(default_factory=list)
    steps_left: int | None = None  # shown to the policy when the horizon is announced

    @property
    def observation(self) -> str:
        return self.turns[-1].observation if self.turns else self.first


@dataclass
class Decision:
    text: str  # everything the policy produced (its thought and action)
    action: str  # what goes to the environment
    usage: Usage = field(default_factory=Usage)


class Policy(ABC):
    name: str = "policy"
    generator: Generator | None = None  # the model whose usage the ledger prices

    def start(self, first_observation: str) -> None:  # noqa: B027 - optional hook
        """A new episode begins (a stateful policy resets here)."""

    @abstractmethod
    def act(self, trajectory: Trajectory, seed: int) -> Decision:
        """The next action; ``seed`` is the step's sampling seed."""

    def describe(self) -> dict[str, Any]:
        """What determines this policy's actions (a run's config records it)."""
        return {"name": self.name}


def extract_action(text: str) -> str:
    """The last ``Action:`` line's content, else the first non-empty line."""
    found = ACTION_LINE.findall(text)
    if found:
        return found[-1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def build_prompt(trajectory: Trajectory, window: int) -> str:
    """The policy prompt: grammar, task, the last ``window`` turns, the current observation."""
    parts = ["You are a web agent. Explore the site step by step.", trajectory.action_help,
             "Reply with a short thought, then one line 'Action: <action>'.", "",
             "Start:", trajectory.first]
    shown = trajectory.turns[-window:] if window > 0 else []
    skipped = len(trajectory.turns) - len(shown)
    if skipped:
        parts.append(f"({skipped} earlier step(s) not shown)")
    for turn in shown:
        parts += ["", f"Thought: {turn.thought}", f"Action: {turn.action}", "Observation:",
                  turn.observation]
    if trajectory.steps_left is not None:
        parts += ["", f"({trajectory.steps_left} step(s) left)"]
    parts += ["", "Thought:"]
    return "\n".join(parts)


class GeneratorPolicy(Policy):
    def __init__(self, generator: Generator, *, step_tokens: int = 64, temperature: float = 0.0,
                 window: int = 4) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.generator = generator
        self.name = f"generator:{generator.name}"
        self.params = SamplingParams(temperature=temperature, max_tokens=step_tokens,
                                     stop=("\nObservation:",))
        self.window = window

    def act(self, trajectory: Trajectory, seed: int) -> Decision:
        assert self.generator is not None
        result = self.generator.generate([build_prompt(trajectory, self.window)],
                                         replace(self.params, seed=seed))
        text = result.completions[0][0].text
        thought = ACTION_LINE.split(text)[0].strip() if ACTION_LINE.search(text) else text.strip()
        return Decision(thought, extract_action(text), result.usage)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "step_tokens": self.params.max_tokens,
                "temperature": self.params.temperature, "window": self.window}
