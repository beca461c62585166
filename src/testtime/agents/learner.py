"""A trainable agent policy: the embedded GPT-2 of :class:`testtime.learn.policy.Policy`
acting in the agent loop, recording each step's (prompt, completion) token ids for
the policy-gradient update of :mod:`testtime.agents.tti_rl`.

Prompts are :class:`~testtime.agents.policy.GeneratorPolicy`'s, fitted to the model's
context; ``salt`` varies the sampling seeds between the rollouts of one task (the
loop derives a step's seed from the episode seed alone)."""

from __future__ import annotations

from typing import Any

from testtime.agents.policy import Decision, Policy, Trajectory, decide, fit_prompt
from testtime.learn.policy import Policy as LearnPolicy
from testtime.scale.common import derive_seed

STOP = ("\nObservation:",)


class LearnerPolicy(Policy):
    def __init__(self, model: LearnPolicy, *, step_tokens: int = 48, temperature: float = 1.0,
                 window: int = 2) -> None:
        if model.n_positions <= step_tokens + 16:
            raise ValueError(f"a context of {model.n_positions} tokens leaves no room for a prompt "
                             f"and {step_tokens} step tokens")
        self.model, self.step_tokens, self.temperature, self.window = model, step_tokens, temperature, window
        self.name = f"learner:{model.model_dir.name}"
        self.salt: Any = 0
        self.records: list[tuple[list[int], list[int]]] = []  # this episode's (prompt, completion) ids

    def start(self, first_observation: str) -> None:
        self.records = []

    def act(self, trajectory: Trajectory, seed: int) -> Decision:
        model = self.model
        limit = model.n_positions - self.step_tokens - 1
        prompt = fit_prompt(trajectory, self.window, limit, lambda text: len(model.encode_prompt(text)))
        rows, usage = model.rollouts([model.encode_prompt(prompt)], 1, temperature=self.temperature,
                                     max_tokens=self.step_tokens, seed=derive_seed(seed, self.salt),
                                     stop=STOP)
        rollout = rows[0][0]
        self.records.append((rollout.prompt_ids, rollout.ids))
        return decide(rollout.text, usage)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "step_tokens": self.step_tokens, "temperature": self.temperature,
                "window": self.window}
