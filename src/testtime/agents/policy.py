"""Policies: what picks the next action from the trajectory so far.

:class:`GeneratorPolicy` runs any :class:`~testtime.backends.base.Generator`
(the embedded model, an OpenAI-compatible upstream, vLLM) as a ReAct-style
policy: the prompt is the action grammar, the task, the last ``window`` turns
and the current observation; the model thinks within ``step_tokens`` tokens
(the per-step reasoning budget) and ends with ``Action: ...``. The action is
the last such line; without one, the output's first line goes to the
environment as is (it will answer ``invalid action: ...``). A prompt longer than
the model's context (``context``: the backend's ``n_positions`` when it has one)
is fitted by showing fewer turns, then only the task paragraph of the first
observation, then by cutting its oldest characters (marked in the prompt).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
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


def decide(text: str, usage: Usage) -> Decision:
    """A model's reply as a decision: its thought (before the action line) and its action."""
    thought = ACTION_LINE.split(text)[0].strip() if ACTION_LINE.search(text) else text.strip()
    return Decision(thought, extract_action(text), usage)


def build_prompt(trajectory: Trajectory, window: int, *, brief: bool = False) -> str:
    """The policy prompt: grammar, task, the last ``window`` turns, the current observation
    (``brief``: of the first observation only its first paragraph, the task)."""
    first = trajectory.first.split("\n\n")[0] if brief and trajectory.turns else trajectory.first
    parts = ["You are a web agent. Explore the site step by step.", trajectory.action_help,
             "Reply with a short thought, then one line 'Action: <action>'.", "",
             "Start:", first]
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


def fit_prompt(trajectory: Trajectory, window: int, limit: int, count: Callable[[str], int]) -> str:
    """The prompt with the most of the last ``window`` turns that is at most ``limit`` tokens
    by ``count``; then the task only; then cut from the left (marked)."""
    for shown in range(min(window, len(trajectory.turns)), -1, -1):
        prompt = build_prompt(trajectory, shown)
        if count(prompt) <= limit:
            return prompt
    body = prompt = build_prompt(trajectory, 0, brief=True)
    while count(prompt) > limit:
        body = body[max(1, len(body) // 10):]
        prompt = "(cut to fit the context) " + body
    return prompt


class GeneratorPolicy(Policy):
    def __init__(self, generator: Generator, *, step_tokens: int = 64, temperature: float = 0.0,
                 window: int = 4, context: int | None = None) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.context = context if context is not None else getattr(generator, "n_positions", None)
        if self.context is not None and self.context <= step_tokens + 16:
            raise ValueError(f"a context of {self.context} tokens leaves no room for a prompt "
                             f"and {step_tokens} step tokens")
        if self.context is not None:
            try:
                generator.count_tokens("x")
            except NotImplementedError as err:
                raise ValueError(f"fitting prompts to a context needs token counts: {err}") from None
        self.generator = generator
        self.name = f"generator:{generator.name}"
        self.params = SamplingParams(temperature=temperature, max_tokens=step_tokens,
                                     stop=("\nObservation:",))
        self.window = window

    def act(self, trajectory: Trajectory, seed: int) -> Decision:
        assert self.generator is not None
        result = self.generator.generate([self.prompt(trajectory)],
                                         replace(self.params, seed=seed))
        return decide(result.completions[0][0].text, result.usage)

    def prompt(self, trajectory: Trajectory) -> str:
        """The prompt for this step, fitted to the context (see the module docstring)."""
        assert self.generator is not None
        if self.context is None:
            return build_prompt(trajectory, self.window)
        limit = self.context - self.params.max_tokens - 1
        return fit_prompt(trajectory, self.window, limit, self.generator.count_tokens)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "context": self.context, "step_tokens": self.params.max_tokens,
                "temperature": self.params.temperature, "window": self.window}
