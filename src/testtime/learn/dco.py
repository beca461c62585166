"""DCO: confidence-limiting fine-tuning for pass@N (Chen et al. 2025, "Rethinking
fine-tuning when scaling test-time compute: limiting confidence improves
mathematical reasoning"; spec §11).

With N samples at test time the objective is pass@N, and for a reference
solution y with probability p = p_θ(y | x) its loss is
``-log[1 - (1 - p)^N]``. Its gradient is cross-entropy's times
``F = N p (1 - p)^(N-1) / (1 - (1 - p)^N)``, which goes to 0 as p → 1: examples
the model is already sure of stop pushing it towards over-confidence (which
would waste the N samples on the same answer). ``objective=ce`` is the plain
cross-entropy baseline. Training data are the task's generated problems with
reference solutions (a training split disjoint from the held-out test seed);
pass@k curves (k = 1..eval_samples) are measured before and after.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import (
    TRAIN_SEED,
    RunDir,
    check_memory,
    evaluate,
    make_problems,
    parse_split,
    require_answers,
    require_generator,
)
from testtime.learn.loop import StepTrainer
from testtime.learn.policy import Policy
from testtime.zoo.reasoner_sampling import pass_at_k

OBJECTIVES = ("dco", "ce")


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, accurate at both ends (Mächler 2012)."""
    x = x.clamp_max(-1e-12)
    near = x > -math.log(2)
    # Each branch sees only inputs where it is finite, so the unused one cannot put
    # inf * 0 = NaN into the gradient of torch.where.
    a = torch.log(-torch.expm1(torch.where(near, x, torch.full_like(x, -1.0))))
    b = torch.log1p(-torch.exp(torch.where(near, torch.full_like(x, -1.0), x)))
    return torch.where(near, a, b)


TINY_LOGP = -30.0  # below this, 1 - (1 - p)^n = n p to within n p / 2 < 1e-12 (relative)


def dco_loss(seq_logp: torch.Tensor, n: int) -> torch.Tensor:
    """``-log[1 - (1 - p)^n]`` per sequence from log p, in float64 log space. A whole
    solution is usually far less likely than e^-30, where ``1 - p`` rounds to 1 in any
    float type; there the loss is ``-log n - log p`` (CE plus a constant, F = 1)."""
    s = seq_logp.double()
    tiny = s < TINY_LOGP
    exact = -log1mexp(n * log1mexp(torch.where(tiny, torch.full_like(s, -1.0), s)))
    return torch.where(tiny, -(math.log(n) + s), exact).to(seq_logp.dtype)


def dco_factor(seq_logp: torch.Tensor, n: int) -> torch.Tensor:
    """The factor F(p) by which DCO's gradient scales cross-entropy's (1 for tiny p)."""
    s = seq_logp.double()
    p = s.exp()
    exact = n * p * (1 - p) ** (n - 1) / -torch.expm1(n * torch.log1p(-p.clamp_max(1 - 1e-15)))
    return torch.where(s < TINY_LOGP, torch.ones_like(s), exact)


def sequence_loss(seq_logp: torch.Tensor, objective: str, n: int) -> torch.Tensor:
    if objective == "ce":
        return -seq_logp
    if objective == "dco":
        return dco_loss(seq_logp, n)
    raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")


@dataclass
class DCOConfig:
    objective: str = "dco"
    n: int = 8  # the N of pass@N the loss targets
    steps: int = 60
    batch_size: int = 16
    lr: float = 3e-5
    grad_clip: float = 1.0
    train_problems: int = 2000
    max_tokens: int = 192
    eval_samples: int = 16
    temperature: float = 1.0
    checkpoint_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        for name in ("n", "steps", "batch_size", "train_problems", "eval_samples", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class DCOTrainer(StepTrainer):
    description = "dco"

    def __init__(self, policy: Policy, request: LearnRequest, cfg: DCOConfig, run: RunDir) -> None:
        super().__init__(
            policy, run, steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, lr=cfg.lr,
            grad_clip=cfg.grad_clip, show_progress=request.show_progress,
        )
        self.cfg, self.task, self.eval_problems = cfg, request.task, request.problems
        solver = require_generator(request.task, "dco")
        train = make_problems(request.task, parse_split(request.split), cfg.train_problems, TRAIN_SEED)
        self.examples = [
            (policy.encode_prompt(p.prompt), policy.tokenizer.encode(solver.solve(p), add_special_tokens=False)
             + [policy.eos_id])
            for p in train
        ]
        longest = max(len(a) + len(b) for a, b in self.examples)
        s = policy.shape
        check_memory(policy.num_parameters, s.n_layer, s.n_embd, s.vocab_size, cfg.batch_size, longest)

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        order = torch.randperm(len(self.examples), generator=torch.Generator().manual_seed(cfg.seed + step))
        batch = [self.examples[i] for i in order[: cfg.batch_size].tolist()]
        stats = self.policy.token_stats([a for a, _ in batch], [b for _, b in batch])
        seq_logp = stats.logp.sum(-1)
        lengths = stats.mask.sum(-1).clamp_min(1)
        # Per-token normalisation shared by both objectives keeps their gradients
        # comparable: DCO's is exactly F(p) times CE's, example by example.
        loss = (sequence_loss(seq_logp, cfg.objective, cfg.n) / lengths).mean()
        out = {"loss": loss.item(), "mean_p": seq_logp.exp().mean().item()}
        out["mean_F"] = dco_factor(seq_logp.detach(), cfg.n).mean().item()
        out["grad_norm"] = self.apply(loss)
        self.policy.refresh()
        return out

    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        ev = evaluate(
            self.policy, self.task, self.eval_problems, n=cfg.eval_samples,
            temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed,
        )
        curve = {
            str(k): sum(pass_at_k(ev.n, c, k) for c in ev.correct) / len(ev.correct)
            for k in range(1, ev.n + 1)
        }
        return {**ev.to_json(), "pass@k": curve}

    def note(self, stats: dict[str, float]) -> str:
        return f"loss {stats['loss']:.3f} F {stats['mean_F']:.2f}"


@METHODS.register("dco")
@takes_options(DCOConfig)
def dco(request: LearnRequest) -> dict[str, Any]:
    cfg = build_config(DCOConfig, {"seed": request.seed}, request.options, "dco")
    require_answers(request.task, request.problems, "dco")
    require_generator(request.task, "dco")
    policy = Policy(request.model_dir)
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    try:
        result = DCOTrainer(policy, request, cfg, run).train()
        result.pop("log")
        return run.finish({"config": asdict(cfg), "labels": "none", **result})  # trains on its own split
    finally:
        run.close()
