"""TTI's interaction-horizon curriculum (Shen et al. 2025, "Thinking vs. Doing"): training
rollouts start short and their horizon grows in stages, so the agent first learns the
basic skills on short, low-variance episodes and is then exposed to long ones where
exploring and backtracking pay. The paper's schedule is multiplicative; additive and
fixed (the fixed-horizon baselines of the paper) are here to compare."""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("multiplicative", "additive", "fixed")


@dataclass(frozen=True)
class HorizonSchedule:
    kind: str = "multiplicative"
    start: int = 5
    end: int = 20
    stage_steps: int = 2  # training steps per stage
    factor: float = 2.0  # multiplicative: horizon × factor per stage
    increment: int = 5  # additive: horizon + increment per stage

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.kind!r}")
        if not 1 <= self.start <= self.end:
            raise ValueError(f"need 1 <= start <= end horizons, got {self.start}, {self.end}")
        if self.stage_steps < 1 or self.factor <= 1 or self.increment < 1:
            raise ValueError("need stage_steps >= 1, factor > 1 and increment >= 1")

    def horizon(self, step: int) -> int:
        """The rollout horizon of training step ``step`` (0-based); ``fixed`` is ``end``."""
        if self.kind == "fixed":
            return self.end
        stage = step // self.stage_steps
        grown = (self.start * self.factor ** stage if self.kind == "multiplicative"
                 else self.start + self.increment * stage)
        return min(self.end, int(grown))
