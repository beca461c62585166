"""LatentSeek: instance-level test-time policy gradient in the latent space
(Li et al. 2025, "Seek in the dark: reasoning via test-time instance-level
policy gradient in latent space"; spec §10).

Per problem: decode greedily; take the last-layer hidden states ``z_t`` (after
the final layer norm, before the LM head) of the first
``L = min(⌊fraction · T⌋, 300)`` generated tokens; treat them as parameters and
run Adam (lr 0.03) on ``-R · Σ_t log softmax(lm_head(z_t))[x_t]`` with
``x_t = argmax lm_head(z_t)`` (REINFORCE with the greedy token as the action);
decode the prefix from the new ``z``, continue greedily and re-score. Stop when
``R > -0.2`` or after ``max_iters``. The model's weights never change.

Rewards R <= 0: ``self`` (the default, label-free) is the solution's mean token
log-prob — the model's own confidence; the paper's self-reward prompts the model
to grade its answer, which the embedded TinyReasoner cannot follow, so its own
likelihood stands in (a deviation). ``verifier`` gives ``min step score - 1``
(-1 without an answer line) from ``verifier`` (default ``prm``, the learned PRM,
label-free; ``oracle``, the task's step checker, is gold step labels). ``answer``
compares with the reference. The last two are upper bounds, reported as
``labels: oracle-verifier``.

SoftCoT++-style diversity (Xu et al. 2025): ``k_init > 1`` optimises K chains
from differently perturbed initial latents (``init_noise`` × N(0, 1), chain 0
unperturbed) and takes the majority of their answers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import (
    RunDir,
    key_correct,
    majority,
    require_answers,
    solve_each,
    vote_keys,
)
from testtime.learn.policy import Policy
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import grading
from testtime.verifiers.base import Verifier, aggregate

REWARDS = ("verifier", "self", "answer")


@dataclass
class LatentSeekConfig:
    reward: str = "self"
    verifier: str = "prm"
    lr: float = 0.03
    fraction: float = 0.1
    max_latent: int = 300
    max_iters: int = 10
    threshold: float = -0.2
    k_init: int = 1
    init_noise: float = 0.5
    max_tokens: int = 192
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.max_iters < 1 or self.k_init < 1 or self.max_latent < 1:
            raise ValueError("max_iters, k_init and max_latent must be >= 1")

    @property
    def labels(self) -> str:
        gold = self.reward == "answer" or (self.reward == "verifier" and self.verifier == "oracle")
        return "oracle-verifier" if gold else "none"


class LatentSeek:
    """Optimises one problem's reasoning latents; the policy's weights stay frozen."""

    def __init__(self, policy: Policy, task: Task, cfg: LatentSeekConfig, verifier: Verifier | None) -> None:
        self.policy, self.task, self.cfg, self.verifier = policy, task, cfg, verifier

    def reward(self, problem: Problem, text: str, ids: list[int]) -> float:
        cfg = self.cfg
        if cfg.reward == "answer":
            return 0.0 if self.task.is_correct(problem, text) else -1.0
        if cfg.reward == "self":
            with torch.no_grad():
                st = self.policy.token_stats([self.policy.encode_prompt(problem.prompt)], [ids])
            return float(st.logp.sum() / st.mask.sum().clamp_min(1))
        if self.task.extract_answer(text) is None:
            return -1.0
        assert self.verifier is not None
        steps = self.verifier.score(problem, [text]).steps[0]
        return aggregate(steps, "min") - 1.0 if steps else -1.0

    def _continue(self, prompt: list[int], prefix: list[int]) -> list[int]:
        """Greedy continuation of ``prompt + prefix`` (nothing after an EOS in the prefix)."""
        eos = self.policy.eos_id
        if eos in prefix:
            return prefix[: prefix.index(eos) + 1]
        budget = self.cfg.max_tokens - len(prefix)
        if budget < 1:
            return prefix
        rows, _ = self.policy.rollouts([prompt + prefix], 1, temperature=0.0, max_tokens=budget, seed=None)
        return prefix + rows[0][0].ids

    def solve(self, problem: Problem) -> dict[str, Any]:
        """Greedy answer, then LatentSeek's answer; iterations and decoded tokens as cost."""
        cfg, policy = self.cfg, self.policy
        prompt = policy.encode_prompt(problem.prompt)
        rows, _ = policy.rollouts([prompt], 1, temperature=0.0, max_tokens=cfg.max_tokens, seed=None)
        ids0 = rows[0][0].ids
        text0 = policy.detok.decode(ids0)
        r0 = self.reward(problem, text0, ids0)
        tokens, iters, texts, rewards = len(ids0), 0, [], []
        if r0 > cfg.threshold or not ids0:
            texts, rewards = [text0], [r0]
        else:
            with torch.no_grad():
                seq = torch.tensor([prompt + ids0])
                hidden = policy.model.transformer(input_ids=seq).last_hidden_state[0]
            L = max(1, min(math.floor(cfg.fraction * len(ids0)), cfg.max_latent))
            z0 = hidden[len(prompt) - 1 : len(prompt) - 1 + L].detach()
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, problem.id) or 0)
            for k in range(cfg.k_init):
                noise = cfg.init_noise * torch.randn(z0.shape, generator=gen) if k else 0.0
                text, r, used, n_tok = self._optimise(problem, prompt, z0 + noise, r0 if k == 0 else None)
                texts.append(text)
                rewards.append(r)
                iters += used
                tokens += n_tok
        keys = vote_keys(self.task, problem, texts)
        answer = majority(keys)[0]
        with grading():
            greedy_correct = self.task.is_correct(problem, text0)
        return {
            "greedy_correct": greedy_correct,
            "correct": key_correct(self.task, problem, answer),
            "initial_reward": r0,
            "rewards": rewards,
            "iterations": iters,
            "tokens": tokens,
            "text": texts[0],
        }

    def _optimise(
        self, problem: Problem, prompt: list[int], z_init: torch.Tensor, reward: float | None
    ) -> tuple[str, float, int, int]:
        """One chain: Adam on the latents until the reward clears the threshold."""
        cfg, policy = self.cfg, self.policy
        lm_head = policy.model.lm_head
        z = torch.nn.Parameter(z_init.clone())
        opt = torch.optim.Adam([z], lr=cfg.lr)
        tokens, used = 0, 0
        text = ""
        if reward is None:  # a perturbed chain starts from its own decoding
            ids = self._decode(prompt, z)
            text, tokens = policy.detok.decode(ids), len(ids)
            reward = self.reward(problem, text, ids)
        for used in range(1, cfg.max_iters + 1):
            if reward > cfg.threshold:
                used -= 1
                break
            logp = torch.log_softmax(lm_head(z), -1)
            action = logp.argmax(-1).detach()
            loss = -reward * logp.gather(-1, action[:, None]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            ids = self._decode(prompt, z)
            text, tokens = policy.detok.decode(ids), tokens + len(ids)
            reward = self.reward(problem, text, ids)
        return text, reward, used, tokens

    @torch.no_grad()
    def _decode(self, prompt: list[int], z: torch.Tensor) -> list[int]:
        prefix = self.policy.model.lm_head(z).argmax(-1).tolist()
        return self._continue(prompt, prefix)


@METHODS.register("latentseek")
@takes_options(LatentSeekConfig)
def latentseek(request: LearnRequest) -> dict[str, Any]:
    cfg = build_config(LatentSeekConfig, {"seed": request.seed}, request.options, "latentseek")
    task = request.task
    require_answers(task, request.problems, "latentseek")
    verifier = None
    if cfg.reward == "verifier":
        from testtime.verifiers import get_verifier

        verifier = get_verifier(cfg.verifier, task)
    policy = Policy(request.model_dir)
    policy.model.requires_grad_(False)  # only the latents are optimised
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    seeker = LatentSeek(policy, task, cfg, verifier)
    try:
        results = solve_each(run, request, seeker.solve, "latentseek")
        return run.finish({"config": asdict(cfg), "labels": cfg.labels, **summarise(results)})
    finally:
        run.close()


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(results)
    return {
        "problems": n,
        "before": {"accuracy": sum(r["greedy_correct"] for r in results) / n},
        "after": {"accuracy": sum(r["correct"] for r in results) / n},
        "mean_iterations": sum(r["iterations"] for r in results) / n,
        "mean_tokens": sum(r["tokens"] for r in results) / n,
        "optimised": sum(r["iterations"] > 0 for r in results),
    }
