"""The agent loop: a policy acts in an environment until it answers or the horizon ends.

Interaction scaling by prompting, after TTI (Shen et al., "Thinking vs. Doing",
2025): ``horizon`` caps the interaction steps; ``announce`` shows the steps left
in the prompt (a horizon budget the policy can plan with); ``check_again``
intercepts the first k final answers with a cue to re-check and explore more
(each cue costs a step, so a cue at the last step leaves none to answer again;
the answer after the last cue is final). Deviations:
the cue is a loop option for any environment with an answer action, not a
browser prompt; TTI's curriculum RL over horizons is :mod:`testtime.agents.tti_rl`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from testtime.agents.env import Environment
from testtime.agents.ledger import AgentCompute
from testtime.agents.policy import Policy, Trajectory, Turn

CHECK_AGAIN = ("You are about to answer {answer!r}. Before you finish, check again: revisit "
               "the pages that support it and explore any candidate you have not checked. "
               "If you are sure, give the answer again.")


@dataclass(frozen=True)
class LoopOptions:
    horizon: int = 20
    check_again: int = 0
    announce: bool = False

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.check_again < 0:
            raise ValueError(f"check_again must be >= 0, got {self.check_again}")


@dataclass
class Episode:
    """One episode's record (JSON-able via :meth:`to_dict`)."""

    seed: int
    reward: float
    success: bool
    ended: str  # "answer" or "horizon"
    answer: str | None
    ledger: AgentCompute
    cues: int = 0
    turns: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ledger"] = self.ledger.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Episode:
        return cls(**{**d, "ledger": AgentCompute.from_dict(d["ledger"])})


def run_episode(env: Environment, policy: Policy, seed: int, options: LoopOptions) -> Episode:
    """Play the episode of ``seed``; deterministic when the policy is (step seeds derive from it)."""
    first = env.reset(seed)
    policy.start(first)
    trajectory = Trajectory(first, env.action_help)
    ledger, cues, reward, answer, ended = AgentCompute(), 0, 0.0, None, "horizon"
    for step in range(options.horizon):
        if options.announce:
            trajectory.steps_left = options.horizon - step
        decision = policy.act(trajectory, seed * 100_003 + step)
        if env.is_answer(decision.action) and cues < options.check_again:
            cues += 1
            _, _, said = decision.action.strip().partition(" ")
            observation, invalid, done = CHECK_AGAIN.format(answer=said.strip()), False, False
        else:
            result = env.step(decision.action)
            observation, invalid, done = result.observation, bool(result.info.get("invalid")), result.done
            reward = result.reward
            if done:
                answer, ended = result.info.get("answer"), "answer"
        ledger.add_step(decision.usage, policy.generator, invalid=invalid)
        trajectory.turns.append(Turn(decision.text, decision.action, observation))
        if done:
            break
    turns = [{"thought": t.thought, "action": t.action, "observation": t.observation}
             for t in trajectory.turns]
    return Episode(seed, reward, reward > 0, ended, answer, ledger, cues, turns)
