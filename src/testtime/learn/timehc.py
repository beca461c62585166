"""TimeHC-RL (Hou et al. 2025; formats and rewards: :mod:`testtime.learn.cognitive_modes`)
on the project's GRPO core (:class:`testtime.learn.grpo.GRPOTrainer`: group-normalised
advantages, PPO's clipped surrogate, optional KL).

``mode=adaptive`` (TimeHC-RL): the policy writes its own mode line, so the cognitive
mode is chosen per problem and trained by the reward; ``temporal=true`` adds the
temporal advantage-level reward (ordered vs shuffled timelines). A forced mode
(``mode=deliberate``: the paper's System-2 RL baseline, ``mode=intuition``: System-1
RL; :mod:`testtime.learn.mode_rl`) appends that mode line to every prompt, in
training and evaluation.

Supervised RL, not label-free: rewards read the gold answers of a *generated*
training split (``train_problems`` problems of the split's levels, seed
:data:`~testtime.learn.common.TRAIN_SEED`), never the held-out test problems, which
are read only to evaluate (as ``dco`` does; ``labels: none`` in that sense,
``reward_labels`` says what the reward read). Deviations: a group of
``n_samples`` on the shuffled story per prompt (the paper does not say the size);
rollouts use the lean sampler of the embedded GPT-2, not vLLM.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.cognitive_modes import (
    MODES,
    RewardSpec,
    correct_of,
    format_ok,
    mode_line,
    mode_shares,
    rewards,
    shuffle_events,
)
from testtime.learn.common import (
    TRAIN_SEED,
    RunDir,
    key_correct,
    majority,
    make_problems,
    parse_split,
    require_answers,
    vote_keys,
)
from testtime.learn.grpo import Batch, CoreOptions, GRPOConfig, GRPOTrainer
from testtime.learn.policy import Policy, Rollout
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import grading


@dataclass
class TimeHCConfig(CoreOptions):
    """The GRPO core's options (``n_samples``: the group, and the shuffled group, per
    prompt) and TimeHC-RL's."""

    mode: str = "adaptive"  # "adaptive" (the policy picks per problem) | a forced mode
    temporal: bool = True
    format_reward: float = 1.0
    correct_reward: float = 2.0
    wrong_reward: float = -1.5
    alpha: float = 0.1
    mu: float = 0.8
    deliberation_cost: float = 0.0
    train_problems: int = 2000

    def __post_init__(self) -> None:
        if self.mode != "adaptive" and self.mode not in MODES:
            raise ValueError(f"mode must be adaptive or one of {', '.join(MODES)}, got {self.mode!r}")
        if self.train_problems < 1:
            raise ValueError(f"train_problems must be >= 1, got {self.train_problems}")
        if self.alpha < 0 or self.mu < 0 or self.deliberation_cost < 0:
            raise ValueError("alpha, mu and deliberation_cost must be >= 0")
        self.grpo()  # the core's own checks (positive counts, lr, clip range, temperature)

    def grpo(self) -> GRPOConfig:
        """The GRPO core's options (its majority-vote fields unused: rewards are ours)."""
        core = {f.name: getattr(self, f.name) for f in fields(CoreOptions)}
        return GRPOConfig(**core, n_votes=self.n_samples)

    @property
    def rewards(self) -> RewardSpec:
        return RewardSpec(self.format_reward, self.correct_reward, self.wrong_reward, self.alpha,
                          self.mu, self.deliberation_cost)


class TimeHCTrainer(GRPOTrainer):
    """GRPO with gold, format and temporal rewards; the policy update is the core's."""

    description = "timehc"

    def __init__(self, policy: Policy, task: Task, train_problems: list[Problem],
                 eval_problems: list[Problem], hc: TimeHCConfig, run: RunDir, *,
                 show_progress: bool = True) -> None:
        super().__init__(policy, task, train_problems, eval_problems, hc.grpo(), run,
                         show_progress=show_progress)
        self.hc = hc
        self.prefix = "" if hc.mode == "adaptive" else mode_line(hc.mode)
        if hc.temporal:
            shuffle_events(train_problems[0].prompt, random.Random(0))  # a clear error up front

    def _sample(self, prompts: list[str], n: int, temperature: float,
                seed: int) -> tuple[list[list[str]], list[list[Rollout]], int]:
        ids = [self.policy.encode_prompt(p + self.prefix) for p in prompts]
        rows, usage = self.policy.rollouts(ids, n, temperature=temperature,
                                           max_tokens=self.hc.max_tokens, seed=seed)
        return [[self.prefix + r.text for r in row] for row in rows], rows, usage.completion_tokens

    def _collect(self, step: int) -> tuple[Batch, dict[str, float]]:
        hc, task = self.hc, self.task
        k = hc.prompts_per_step
        problems = self._step_problems(step)
        texts, rows, tokens = self._sample([p.prompt for p in problems], hc.n_samples, hc.temperature,
                                           derive_seed(hc.seed, "step", step))
        shuffled_acc: list[float | None] = [None] * k
        if hc.temporal:
            rng = random.Random(derive_seed(hc.seed, "shuffle", step))
            shuffled = [shuffle_events(p.prompt, rng) for p in problems]
            s_texts, _, s_tokens = self._sample(shuffled, hc.n_samples, hc.temperature,
                                                derive_seed(hc.seed, "shuffled", step))
            tokens += s_tokens
            shuffled_acc = [sum(correct_of(task, p, t) for t in row) / len(row)
                            for p, row in zip(problems, s_texts, strict=True)]
        all_rewards, flat_texts, flat_correct, bonuses = [], [], [], 0
        for problem, row, acc in zip(problems, texts, shuffled_acc, strict=True):
            correct = [correct_of(task, problem, t) for t in row]
            r, paid = rewards(row, correct, hc.rewards, acc)
            all_rewards.append(r)
            flat_texts += row
            flat_correct += correct
            bonuses += paid
        stats = {"pass@1": sum(flat_correct) / len(flat_correct),
                 "format": sum(map(format_ok, flat_texts)) / len(flat_texts),
                 "reward": sum(map(sum, all_rewards)) / len(flat_texts),
                 "mean_length": sum(r.length for row in rows for r in row) / len(flat_texts),
                 "rollout_tokens": float(tokens), **mode_shares(flat_texts, flat_correct)}
        if hc.temporal:
            stats["shuffled_acc"] = sum(a for a in shuffled_acc if a is not None) / k
            stats["temporal_bonus"] = bonuses / k
        return Batch(rows, torch.tensor(all_rewards), None), stats

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """pass@1, maj@n (majority voting: the test-time intervention), mode shares and
        each mode's accuracy on the held-out problems (labels read here only)."""
        hc, task = self.hc, self.task
        texts, rows, _ = self._sample([p.prompt for p in self.eval_problems], hc.eval_samples,
                                      hc.eval_temperature, derive_seed(hc.seed, "eval"))
        correct, maj, flat, flat_ok = [], 0, [], []
        for problem, row in zip(self.eval_problems, texts, strict=True):
            with grading():
                ok = [task.is_correct(problem, t) for t in row]
            correct.append(sum(ok))
            maj += key_correct(task, problem, majority(vote_keys(task, problem, row))[0])
            flat += row
            flat_ok += ok
        n = len(self.eval_problems)
        return {"pass@1": sum(correct) / (n * hc.eval_samples), f"maj@{hc.eval_samples}": maj / n,
                "n": hc.eval_samples, "format": sum(map(format_ok, flat)) / len(flat),
                "mean_length": sum(r.length for row in rows for r in row) / len(flat),
                "correct": correct, **mode_shares(flat, flat_ok)}

    def note(self, stats: dict[str, float]) -> str:
        return (f"acc {stats['pass@1']:.2f} format {stats['format']:.2f} "
                f"deliberate {stats['mode_deliberate']:.2f}")

    def title(self) -> str:
        hc = self.hc
        return (f"{self.task.name} · model {self.policy.model_dir.name} · mode {hc.mode} · "
                f"temporal {hc.temporal} · {len(self.eval_problems)} problems")

    def summary(self) -> dict[str, Any]:
        return {
            "config": asdict(self.hc), "labels": "none",
            "reward_labels": f"gold answers of {len(self.train_problems)} generated training problems "
                             f"(seed {TRAIN_SEED}); the test problems only for evaluation"}


def run_timehc(request: LearnRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    cfg = build_config(TimeHCConfig, {"seed": request.seed, **defaults}, request.options, request.method)
    require_answers(request.task, request.problems, request.method)
    if request.task.name == "jsonl":
        raise ValueError(f"{request.method} trains on generated problems; a jsonl task has no generator")
    train = make_problems(request.task, parse_split(request.split), cfg.train_problems, TRAIN_SEED)
    policy = Policy(request.model_dir)
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    try:
        return TimeHCTrainer(policy, request.task, train, request.problems, cfg, run,
                             show_progress=request.show_progress).train()
    finally:
        run.close()


@METHODS.register("timehc-rl")
@takes_options(TimeHCConfig)
def timehc_rl(request: LearnRequest) -> dict[str, Any]:
    return run_timehc(request, {})
