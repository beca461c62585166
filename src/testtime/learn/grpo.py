"""The policy-gradient core shared by TTRL, ETTRL and SPINE (spec §9).

GRPO (Shao et al. 2024, DeepSeekMath) without a value model: per prompt, a
group of sampled responses gets group-normalised advantages
``A_i = (r_i - mean(r)) / std(r)``, optimised with PPO's clipped surrogate
(Schulman et al. 2017) and an optional KL penalty to the initial policy (the
k3 estimator, ``exp(ref - logp) - (ref - logp) - 1``). TTRL (Zuo et al. 2025)
supplies rewards from the majority vote of the policy's own samples on the
unlabeled test prompts. The token-level pieces (ETTRL's entropy advantage
reshaping, SPINE's forking-token mask and entropy band, MRT's dense progress
bonus) are functions (:mod:`testtime.learn.grpo_math`) so every method composes
the same maths.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from testtime.learn.common import (
    RunDir,
    check_memory,
    evaluate,
    key_correct,
    majority,
    vote_keys,
)
from testtime.learn.grpo_math import (
    clipped_surrogate,
    entropy_band,
    entropy_reshape,
    forking_mask,
    group_advantages,
    kl_k3,
    masked_mean,
)
from testtime.learn.loop import StepTrainer
from testtime.learn.policy import Policy, Rollout, TokenStats
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task


# ----- trainer -------------------------------------------------------------------------
@dataclass
class CoreOptions:
    """The options of the GRPO core that every trainer on it has (TTRL's family, TimeHC-RL)."""

    steps: int = 30
    prompts_per_step: int = 8
    n_samples: int = 8  # the group trained on per prompt (TTRL: 16-32)
    temperature: float = 1.0
    max_tokens: int = 192
    lr: float = 1e-4
    clip_eps: float = 0.2
    kl_coef: float = 0.0
    ppo_epochs: int = 1
    grad_clip: float = 1.0
    checkpoint_every: int = 5
    eval_samples: int = 8
    eval_temperature: float = 1.0
    seed: int = 0
    memory_limit_gb: float | None = None


@dataclass
class GRPOConfig(CoreOptions):
    """Options of the GRPO test-time trainer (the method presets change some)."""

    n_votes: int = 16  # voted on for the pseudo-label, n_samples trained on (TTRL: 64 at 7B)
    # ETTRL options
    rollout: str = "sample"  # "sample" | "tree" (entropy-fork tree)
    fork_points: int = 3
    branches: int = 2
    reshape: bool = False
    adv_clip: float = 0.0  # ETTRL's Adv-Clip: advantages clipped to [-adv_clip, adv_clip] (0: off)
    # SPINE options
    token_mask: str = "all"  # "all" | "forking"
    mask_top: float = 0.2
    band_coef: float = 0.0
    band_low: float = 0.1  # quantiles of the forking tokens' entropy bounding the band
    band_high: float = 0.5
    # MRT (Qu et al. 2025) dense progress bonus
    reward: str = "majority"  # "majority" | "mrt"
    mrt_alpha: float = 0.5
    mrt_samples: int = 2

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "n_votes", "n_samples", "ppo_epochs",
                     "checkpoint_every", "eval_samples", "max_tokens", "fork_points", "branches",
                     "mrt_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_samples > self.n_votes:
            raise ValueError(f"n_samples ({self.n_samples}) cannot exceed n_votes ({self.n_votes})")
        if self.rollout not in ("sample", "tree"):
            raise ValueError(f"rollout must be 'sample' or 'tree', got {self.rollout!r}")
        if self.token_mask not in ("all", "forking"):
            raise ValueError(f"token_mask must be 'all' or 'forking', got {self.token_mask!r}")
        if self.reward not in ("majority", "mrt"):
            raise ValueError(f"reward must be 'majority' or 'mrt', got {self.reward!r}")
        if not self.lr > 0 or not 0 < self.clip_eps < 1 or self.kl_coef < 0 or self.band_coef < 0:
            raise ValueError("need lr > 0, 0 < clip_eps < 1, kl_coef >= 0 and band_coef >= 0")
        if self.adv_clip < 0:
            raise ValueError(f"adv_clip must be >= 0 (0: off), got {self.adv_clip}")
        if self.temperature <= 0:
            raise ValueError(f"rollouts need temperature > 0, got {self.temperature}")


@dataclass
class Batch:
    """The trained rollouts of one step, grouped per prompt."""

    rollouts: list[list[Rollout]]
    rewards: torch.Tensor  # (groups, samples)
    bonus: torch.Tensor | None  # (groups * samples, T) dense per-token reward, or None


def sample_rollouts(
    policy: Policy, prompt_ids: list[list[int]], cfg: GRPOConfig, seed: int
) -> tuple[list[list[Rollout]], int]:
    """TTRL's rollout: ``n_votes`` independent samples per prompt; returns them and the
    number of generated tokens."""
    rows, usage = policy.rollouts(
        prompt_ids, cfg.n_votes, temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed
    )
    return rows, usage.completion_tokens


class GRPOTrainer(StepTrainer):
    """Test-time RL on unlabeled prompts: majority-vote pseudo-rewards, GRPO updates."""

    def __init__(
        self,
        policy: Policy,
        task: Task,
        train_problems: Sequence[Problem],
        eval_problems: Sequence[Problem],
        cfg: GRPOConfig,
        run: RunDir,
        *,
        show_progress: bool = True,
    ) -> None:
        super().__init__(
            policy, run, steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, lr=cfg.lr,
            grad_clip=cfg.grad_clip, show_progress=show_progress,
        )
        self.task, self.cfg = task, cfg
        self.train_problems, self.eval_problems = list(train_problems), list(eval_problems)
        self.ref_model = copy.deepcopy(policy.model).eval() if cfg.kl_coef > 0 else None
        if self.ref_model is not None:
            self.ref_model.requires_grad_(False)
        shape = policy.shape
        if cfg.rollout == "tree":  # every leaf of whole trees is trained on
            per = 1 + cfg.fork_points * cfg.branches
            trained = cfg.prompts_per_step * -(-cfg.n_votes // per) * per
        else:
            trained = cfg.prompts_per_step * cfg.n_samples
        longest = max(len(policy.encode_prompt(p.prompt)) for p in self.train_problems)
        check_memory(
            policy.num_parameters, shape.n_layer, shape.n_embd, shape.vocab_size, trained,
            longest + cfg.max_tokens,
            limit_bytes=None if cfg.memory_limit_gb is None else int(cfg.memory_limit_gb * 2**30),
        )

    def step(self, step: int) -> dict[str, float]:
        batch, stats = self._collect(step)
        stats.update(self._update(batch))
        return stats

    def _step_problems(self, step: int) -> list[Problem]:
        """The ``prompts_per_step`` training problems of ``step`` (cycling through them)."""
        k, n = self.cfg.prompts_per_step, len(self.train_problems)
        return [self.train_problems[(step * k + i) % n] for i in range(k)]

    def _collect(self, step: int) -> tuple[Batch, dict[str, float]]:
        cfg, task = self.cfg, self.task
        k = cfg.prompts_per_step
        problems = self._step_problems(step)
        prompt_ids = [self.policy.encode_prompt(p.prompt) for p in problems]
        if cfg.rollout == "tree":
            from testtime.learn.tree import tree_rollouts as rollout_fn
        else:
            rollout_fn = sample_rollouts
        rows, tokens = rollout_fn(self.policy, prompt_ids, cfg, derive_seed(cfg.seed, "step", step))
        trained, rewards, labels = [], [], []
        stats = {"label_acc": 0.0, "reward_acc": 0.0, "majority_ratio": 0.0, "pass@1": 0.0,
                 f"maj@{cfg.n_votes}": 0.0}
        lengths: list[int] = []
        for problem, row in zip(problems, rows, strict=True):
            keys = vote_keys(task, problem, [r.text for r in row])
            label, ratio = majority(keys)
            labels.append(label)
            # Tree rollouts train on every leaf (their vote and training sets coincide).
            m = len(row) if cfg.rollout == "tree" else cfg.n_samples
            r = [float(key is not None and key == label) for key in keys[:m]]
            truth = [float(key_correct(task, problem, key)) for key in keys[:m]]
            trained.append(row[:m])
            rewards.append(r)
            lengths += [x.length for x in row[:m]]
            # Labels are read here for logging only; the rewards never see them.
            # label_acc is TTRL's name for the pseudo-labels' accuracy, i.e. maj@n.
            stats["label_acc"] += key_correct(task, problem, label)
            stats["reward_acc"] += sum(a == b for a, b in zip(r, truth, strict=True)) / m
            stats["majority_ratio"] += ratio
            stats["pass@1"] += sum(key_correct(task, problem, key) for key in keys) / len(keys)
            stats[f"maj@{cfg.n_votes}"] += key_correct(task, problem, label)
        stats = {key: v / k for key, v in stats.items()}
        stats["mean_length"] = sum(lengths) / len(lengths)
        stats["rollout_tokens"] = float(tokens)
        bonus = None
        if cfg.reward == "mrt":
            from testtime.learn.mrt import progress_bonus

            bonus, extra_tokens = progress_bonus(
                self.policy, task, problems, trained, labels, cfg, derive_seed(cfg.seed, "mrt", step)
            )
            stats["mrt_tokens"] = float(extra_tokens)
        return Batch(trained, torch.tensor(rewards), bonus), stats

    def _advantages(self, batch: Batch, old: TokenStats) -> torch.Tensor:
        """Per-token advantages (B, T): GRPO's, optionally entropy-reshaped (ETTRL), plus
        MRT's dense progress bonus."""
        cfg = self.cfg
        adv = group_advantages(batch.rewards)  # (G, n)
        if cfg.reshape:
            tokens = old.mask.sum(-1).clamp_min(1)
            h = (old.entropy.sum(-1) / tokens).view_as(adv)
            adv = entropy_reshape(adv, h)
        if cfg.adv_clip > 0:
            adv = adv.clamp(-cfg.adv_clip, cfg.adv_clip)
        per_token = adv.reshape(-1, 1).expand_as(old.logp).clone()
        if batch.bonus is not None:
            per_token = per_token + cfg.mrt_alpha * batch.bonus
        return per_token

    def _update(self, batch: Batch) -> dict[str, float]:
        cfg, policy = self.cfg, self.policy
        flat = [r for row in batch.rollouts for r in row]
        prompts, completions = [r.prompt_ids for r in flat], [r.ids for r in flat]
        # Rollouts are on-policy: the first epoch's forward pass gives the old stats too.
        new = policy.token_stats(prompts, completions)
        old = TokenStats(new.logp.detach(), new.entropy.detach(), new.mask)
        with torch.no_grad():
            ref = (
                policy.token_stats(prompts, completions, model=self.ref_model)
                if self.ref_model is not None
                else None
            )
        adv = self._advantages(batch, old)
        mask = old.mask
        if cfg.token_mask == "forking":
            mask = forking_mask(old.entropy, old.mask, cfg.mask_top)
        low = high = None
        if cfg.band_coef > 0:
            band = old.entropy[mask]
            low, high = torch.quantile(band, cfg.band_low), torch.quantile(band, cfg.band_high)
        out: dict[str, float] = {}
        for epoch in range(cfg.ppo_epochs):
            if epoch:
                new = policy.token_stats(prompts, completions)
            loss = clipped_surrogate(new.logp, old.logp, adv, mask, cfg.clip_eps)
            out["pg_loss"] = loss.item()
            if ref is not None:
                kl = kl_k3(new.logp, ref.logp, old.mask)
                loss = loss + cfg.kl_coef * kl
                out["kl"] = kl.item()
            if low is not None and high is not None:
                reg = entropy_band(new.entropy, mask, low, high)
                loss = loss + cfg.band_coef * reg
                out["band"] = reg.item()
            out["grad_norm"] = self.apply(loss)
        out["entropy"] = float(masked_mean(old.entropy, old.mask))
        out["updated_tokens"] = float(mask.sum())
        policy.refresh()
        return out

    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        return evaluate(
            self.policy, self.task, self.eval_problems, n=cfg.eval_samples,
            temperature=cfg.eval_temperature, max_tokens=cfg.max_tokens, seed=cfg.seed,
        ).to_json()

    def note(self, stats: dict[str, float]) -> str:
        return (
            f"label_acc {stats['label_acc']:.2f} pass@1 {stats['pass@1']:.2f} "
            f"len {stats['mean_length']:.0f}"
        )

    def title(self) -> str:
        """The title of the log's plot."""
        cfg = self.cfg
        return (f"{self.task.name} · model {self.policy.model_dir.name} · reward {cfg.reward} "
                f"({cfg.n_votes} votes, rollout {cfg.rollout}) · {len(self.eval_problems)} problems")

    def summary(self) -> dict[str, Any]:
        """What the run summary says before the loop's results."""
        return {"config": asdict(self.cfg), "labels": "none"}

    def train(self) -> dict[str, Any]:  # type: ignore[override]
        """The shared loop, then the plot of the log and the run summary."""
        from testtime.learn.plot import plot_log

        result = super().train()
        log = result.pop("log")
        plot_log(log, self.run.path / "log.png", self.title())
        result["rollout_tokens"] = sum(row.get("rollout_tokens", 0.0) for row in log)
        return self.run.finish({**self.summary(), **result})
