"""The agent compute ledger: reasoning tokens per step, apart from interaction steps.

TTI (Shen et al., 2025) scales two axes separately: *thinking* (tokens a policy
generates per step) and *doing* (environment steps). The ledger keeps both:
``steps`` interactions (invalid actions and intercepted answers included),
``step_tokens`` the generated tokens of each step, and the whole token/FLOP
bill in a :class:`~testtime.scale.base.Compute`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testtime.backends.base import Generator, Usage
from testtime.scale.base import Compute


@dataclass
class AgentCompute:
    steps: int = 0
    invalid_steps: int = 0
    step_tokens: list[int] = field(default_factory=list)
    compute: Compute = field(default_factory=Compute)

    def add_step(self, usage: Usage, generator: Generator | None, *, invalid: bool) -> None:
        """One interaction step whose decision cost ``usage`` (zero for a scripted policy)."""
        self.steps += 1
        self.invalid_steps += int(invalid)
        self.step_tokens.append(usage.completion_tokens)
        if generator is not None:
            self.compute.add_usage(usage, generator)

    @property
    def reasoning_tokens(self) -> int:
        return sum(self.step_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "invalid_steps": self.invalid_steps,
                "step_tokens": list(self.step_tokens), "reasoning_tokens": self.reasoning_tokens,
                "compute": self.compute.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentCompute:
        return cls(d["steps"], d["invalid_steps"], list(d["step_tokens"]),
                   Compute.from_dict(d["compute"]))
