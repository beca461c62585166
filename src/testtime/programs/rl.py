"""ThetaEvolve's test-time RL step: the evolve loop's own policy (a GPT-2 model
directory, e.g. the shipped TinyReasoner) proposes each generation and, once the
generation is scored, takes one GRPO step on the evolution rewards, so the model
internalises what the search found (Wang et al. 2025, §3; GRPO: Shao et al. 2024).

The maths is the project's GRPO core (:mod:`testtime.learn.grpo`): group-normalised
advantages over the samples of one prompt and PPO's clipped surrogate. Deviations:
one on-policy epoch per generation (so the ratio is 1 and the clip inactive), no KL
term, and groups are the samples sharing a prompt text (ThetaEvolve samples several
responses per prompt; a problem with a fixed prompt makes the whole batch one group).
The weights and the optimizer state are checkpointed with the evolve state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from testtime.backends.base import (
    CancelToken,
    Capabilities,
    Completion,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
)
from testtime.learn.grpo import clipped_surrogate, group_advantages
from testtime.learn.policy import Policy


@dataclass(frozen=True)
class RLConfig:
    lr: float = 1e-4
    clip_eps: float = 0.2
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 < self.clip_eps < 1 and self.grad_clip > 0):
            raise ValueError("need lr > 0, 0 < clip_eps < 1 and grad_clip > 0")


class PolicyLearner(Generator):
    """A trainable policy as the evolve generator; ``learning=False`` is the same sampler
    without updates (the inference-only baseline at equal samples)."""

    capabilities = Capabilities(logprobs=False, continuation=True, cancellation=False, seed=True)

    def __init__(self, model_dir: str | Path, config: RLConfig | None = None,
                 learning: bool = True) -> None:
        self.policy = Policy(model_dir)
        self.config = config or RLConfig()
        self.learning = learning
        self.name = "policy-rl" if learning else "policy"
        self.optimizer = torch.optim.AdamW(self.policy.model.parameters(), lr=self.config.lr,
                                           weight_decay=0.0)

    @property
    def num_parameters(self) -> int:
        return self.policy.num_parameters

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 cancel: CancelToken | None = None,
                 on_finish: FinishCallback | None = None) -> GenerationResult:
        rows, usage = self.policy.rollouts(
            [self.policy.encode_prompt(p) for p in prompts], params.n,
            temperature=params.temperature, max_tokens=params.max_tokens, seed=params.seed)
        completions = [[Completion(r.text, r.finish_reason, len(r.ids), token_ids=list(r.ids))
                        for r in row] for row in rows]
        return GenerationResult(completions, usage)

    def learn(self, prompts: Sequence[str], completions: Sequence[Completion],
              rewards: Sequence[float]) -> dict[str, float]:
        """One GRPO step on (prompt, completion, reward) triples; its statistics."""
        if not self.learning:
            return {}
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(i)
        adv = torch.zeros(len(prompts))
        for members in groups.values():
            adv[members] = group_advantages(torch.tensor([rewards[i] for i in members])[None])[0]
        if not adv.abs().sum():
            return {"updated": 0.0, "mean_reward": sum(rewards) / len(rewards)}
        prompt_ids = [self.policy.encode_prompt(p) for p in prompts]
        completion_ids = [self.policy.completion_ids(c) for c in completions]
        new = self.policy.token_stats(prompt_ids, completion_ids)
        per_token = adv[:, None].expand_as(new.logp)
        loss = clipped_surrogate(new.logp, new.logp.detach(), per_token, new.mask, self.config.clip_eps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite GRPO loss {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.policy.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.policy.refresh()
        return {"updated": 1.0, "loss": loss.item(), "grad_norm": norm.item(),
                "mean_reward": sum(rewards) / len(rewards)}

    def save_state(self, path: Path) -> None:
        """Weights and optimizer state in one file, written atomically."""
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save({"model": self.policy.model.state_dict(),
                    "optimizer": self.optimizer.state_dict()}, tmp)
        os.replace(tmp, path)

    def load_state(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self.policy.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.policy.refresh()
