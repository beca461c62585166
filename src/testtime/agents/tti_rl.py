"""TTI: curriculum-based online RL over the interaction horizon (Shen et al. 2025, "Thinking
vs. Doing: agents that reason by scaling test-time interaction"), on the project's GRPO
core (:mod:`testtime.learn.grpo_math`, the resumable :class:`~testtime.learn.loop.StepTrainer`).

Every training step plays ``group`` episodes on each of ``tasks_per_step`` training
seeds with the current policy, at the horizon the schedule gives for that step
(:class:`~testtime.agents.horizon.HorizonSchedule`: short first, then multiplicatively
longer). An episode's reward is its success; every step of an episode shares the
episode's advantage — ``advantage=group``: GRPO's group-normalised one per seed,
``advantage=filtered``: 1 for a success and 0 otherwise, i.e. TTI's online filtered
behaviour cloning (with one PPO epoch the clipped surrogate's gradient is then the
log-likelihood gradient of the successful steps). The update is PPO's clipped
surrogate, a token-level mean over all steps, accumulated in ``micro_batch`` chunks.
Evaluation: ``eval_episodes`` greedy episodes on held-out seeds ``0..n-1`` at
``eval_horizon``.

Deviations: no replay buffer (TTI keeps one, weighted by recency): each step trains
on its own fresh rollouts; a text environment of the project, not WebArena.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from testtime.agents.env import Environment
from testtime.agents.horizon import HorizonSchedule
from testtime.agents.learner import LearnerPolicy
from testtime.agents.loop import LoopOptions, run_episode
from testtime.agents.runner import summarise
from testtime.learn.common import NonFiniteError, RunDir, check_memory, finite
from testtime.learn.grpo_math import clipped_surrogate, group_advantages
from testtime.learn.loop import StepTrainer
from testtime.learn.policy import Policy
from testtime.store import weights_hash

TRAIN_SEEDS = 1_000_000  # training episodes use seeds from here (evaluation: 0..n-1)
ADVANTAGES = ("group", "filtered")


@dataclass
class TTIConfig:
    steps: int = 20
    tasks_per_step: int = 4
    group: int = 4
    schedule: str = "multiplicative"
    h_start: int = 5
    h_end: int = 20
    stage_steps: int = 2
    factor: float = 2.0
    increment: int = 5
    advantage: str = "group"
    step_tokens: int = 48
    window: int = 2
    temperature: float = 1.0
    lr: float = 1e-4
    clip_eps: float = 0.2
    grad_clip: float = 1.0
    micro_batch: int = 32
    checkpoint_every: int = 5
    eval_episodes: int = 20
    eval_horizon: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "tasks_per_step", "group", "step_tokens", "micro_batch",
                     "checkpoint_every", "eval_episodes", "eval_horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.advantage not in ADVANTAGES:
            raise ValueError(f"advantage must be one of {', '.join(ADVANTAGES)}, got {self.advantage!r}")
        if self.temperature <= 0 or self.lr <= 0 or not 0 < self.clip_eps < 1:
            raise ValueError("need temperature > 0, lr > 0 and 0 < clip_eps < 1")
        self.horizons()

    def horizons(self) -> HorizonSchedule:
        return HorizonSchedule(self.schedule, self.h_start, self.h_end, self.stage_steps,
                               self.factor, self.increment)


class TTITrainer(StepTrainer):
    description = "tti"

    def __init__(self, policy: Policy, env: Environment, cfg: TTIConfig, run: RunDir, *,
                 show_progress: bool = True) -> None:
        super().__init__(policy, run, steps=cfg.steps, checkpoint_every=cfg.checkpoint_every,
                         lr=cfg.lr, grad_clip=cfg.grad_clip, show_progress=show_progress)
        self.env, self.cfg, self.schedule = env, cfg, cfg.horizons()
        self.actor = LearnerPolicy(policy, step_tokens=cfg.step_tokens, temperature=cfg.temperature,
                                   window=cfg.window)
        s = policy.shape
        check_memory(policy.num_parameters, s.n_layer, s.n_embd, s.vocab_size, cfg.micro_batch,
                     policy.n_positions, what="a micro-batch of steps")

    def step(self, step: int) -> dict[str, float]:
        cfg, horizon = self.cfg, self.schedule.horizon(step)
        steps: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []  # the episode of each recorded step
        success, lengths, invalid = [], [], []
        for t in range(cfg.tasks_per_step):
            seed = TRAIN_SEEDS + step * cfg.tasks_per_step + t
            for j in range(cfg.group):
                self.actor.salt = (cfg.seed, step, j)
                episode = run_episode(self.env, self.actor, seed, LoopOptions(horizon=horizon))
                owner += [len(success)] * len(self.actor.records)
                steps += self.actor.records
                success.append(float(episode.success))
                lengths.append(episode.ledger.steps)
                invalid.append(episode.ledger.invalid_steps)
        rewards = torch.tensor(success).view(cfg.tasks_per_step, cfg.group)
        adv = group_advantages(rewards) if cfg.advantage == "group" else rewards
        per_step = adv.flatten()[torch.tensor(owner)]
        stats = {"horizon": float(horizon), "success": sum(success) / len(success),
                 "episode_steps": sum(lengths) / len(lengths),
                 "invalid_steps": sum(invalid) / len(invalid), "trained_steps": float(len(steps))}
        stats.update(self._update(steps, per_step))
        return stats

    def _update(self, steps: list[tuple[list[int], list[int]]], adv: torch.Tensor) -> dict[str, float]:
        """One clipped-surrogate step over all ``steps`` (token-level mean), in micro-batches."""
        keep = [i for i in range(len(steps)) if adv[i] != 0 and steps[i][1]]
        if not keep:
            return {"pg_loss": 0.0, "grad_norm": 0.0}  # no signal: no update
        policy, mb = self.policy, self.cfg.micro_batch
        tokens = sum(len(steps[i][1]) for i in keep)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, len(keep), mb):
            chunk = keep[start:start + mb]
            new = policy.token_stats([steps[i][0] for i in chunk], [steps[i][1] for i in chunk])
            a = adv[chunk].view(-1, 1).expand_as(new.logp)
            share = float(new.mask.sum()) / tokens  # chunks weighted by their tokens
            loss = share * clipped_surrogate(new.logp, new.logp.detach(), a, new.mask, self.cfg.clip_eps)
            if not finite(loss):
                raise NonFiniteError(f"non-finite loss ({loss.item()})")
            loss.backward()
            total += loss.item()
        norm = self.optimizer_step()
        policy.refresh()
        return {"pg_loss": total, "grad_norm": norm}

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        actor = LearnerPolicy(self.policy, step_tokens=cfg.step_tokens, temperature=0.0,
                              window=cfg.window)
        options = LoopOptions(horizon=cfg.eval_horizon)
        episodes = [run_episode(self.env, actor, seed, options) for seed in range(cfg.eval_episodes)]
        return summarise(episodes)

    def note(self, stats: dict[str, float]) -> str:
        return f"h {stats['horizon']:.0f} success {stats['success']:.2f} steps {stats['episode_steps']:.1f}"


def train_tti(env: Environment, model_dir: str | Path, out: str | Path, cfg: TTIConfig, *,
              show_progress: bool = True) -> dict[str, Any]:
    """Train (resumably: rerun to resume) and write ``out/metrics.json`` and ``out/model``."""
    policy = Policy(model_dir)
    config = {"kind": "tti-rl", "env": env.describe(), "model": str(Path(model_dir).resolve()),
              "model_weights": weights_hash(Path(model_dir)), "config": asdict(cfg)}
    run = RunDir(out, config, Path(model_dir))
    try:
        result = TTITrainer(policy, env, cfg, run, show_progress=show_progress).train()
        metrics = {"config": asdict(cfg), "env": env.describe(), "labels": "none",
                   "reward": "episode success on generated training seeds", **result}
        return run.finish(json.loads(json.dumps(metrics)))
    finally:
        run.close()
