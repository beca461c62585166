"""TT-SI: test-time self-improvement (Acikgoz et al. 2025, "Self-improving LLM
agents at test-time"; spec §11), the TT-D (teacher-generated data) variant.

Per test problem: sample ``samples`` solutions; the answer distribution's margin
``u = p(1) - p(2)`` (shares of the two most frequent answers) measures
uncertainty. Confident problems (u >= tau) are answered by the majority. For an
uncertain one, the teacher — here the task's own generator and reference solver
— produces ``similar`` problems of the same kind and difficulty with solutions;
a LoRA adapter (Hu et al. 2021, via PEFT) is fine-tuned on them for
``lora_steps`` steps, the problem is answered by majority with the adapter, and
the adapter is reset to its initial (identity) state before the next problem.
No reference answer of a test problem is read except to score the result.

"Of the same difficulty" is label-free: the level is inferred from the prompt
alone (:func:`infer_level`: the level whose generated prompts are closest in
length and term count), where the paper's teacher LLM reads the question. The
problem's true difficulty is read only with ``level=gold`` (``labels:
gold-difficulty``, an upper bound).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import torch

from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import (
    RunDir,
    check_memory,
    key_correct,
    majority,
    require_answers,
    require_generator,
    solve_each,
    vote_keys,
)
from testtime.learn.policy import Policy
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task


@dataclass
class TTSIConfig:
    samples: int = 8
    tau: float = 0.5
    similar: int = 16
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_steps: int = 8
    batch_size: int = 8
    lr: float = 2e-3
    temperature: float = 1.0
    max_tokens: int = 192
    level: str = "inferred"  # "inferred" from the prompt (label-free) | "gold" (reads the difficulty)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "similar", "lora_rank", "lora_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.tau <= 1:
            raise ValueError(f"tau must be in [0, 1], got {self.tau}")
        if self.level not in ("inferred", "gold"):
            raise ValueError(f"level must be 'inferred' or 'gold', got {self.level!r}")

    @property
    def labels(self) -> str:
        return "gold-difficulty" if self.level == "gold" else "none"


def infer_level(task: Task, prompt: str, *, probes: int = 8, seed: int = 0) -> int:
    """The difficulty level whose generated prompts look most like ``prompt``: least mean
    distance in whitespace terms plus characters / 10, over the task's levels and
    1..max level + 4 (levels the generator refuses are skipped)."""

    def distance(other: str) -> float:
        return abs(len(other.split()) - len(prompt.split())) + abs(len(other) - len(prompt)) / 10

    best, best_d = None, float("inf")
    for level in sorted(set(task.levels) | set(range(1, max(task.levels) + 5))):
        try:
            probes_at = task.generate(probes, level, seed)
        except ValueError:
            continue
        d = sum(distance(p.prompt) for p in probes_at) / max(len(probes_at), 1)
        if probes_at and d < best_d:
            best, best_d = level, d
    if best is None:
        raise ValueError(f"task {task.name!r} generated no problems to infer a level from")
    return best


def margin(keys: list[str | None]) -> float:
    """``p(1) - p(2)`` over all samples (no-answer samples count in the denominator)."""
    counts = sorted(Counter(k for k in keys if k is not None).values(), reverse=True) + [0, 0]
    return (counts[0] - counts[1]) / len(keys)


class SelfImprover:
    """The base model wrapped with one LoRA adapter that is trained and reset per problem."""

    def __init__(self, policy: Policy, task: Task, cfg: TTSIConfig) -> None:
        from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

        self.policy, self.task, self.cfg = policy, task, cfg
        self.solver = require_generator(task, "tt-si")
        lora = LoraConfig(
            r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
            target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True,  # GPT-2's Conv1D
        )
        policy.model.requires_grad_(False)
        self.peft = get_peft_model(policy.model, lora)  # injects the adapter into policy.model
        self.initial = {k: v.clone() for k, v in get_peft_model_state_dict(self.peft).items()}
        self.policy.refresh(self.merged_state_dict())

    def merged_state_dict(self) -> dict[str, torch.Tensor]:
        """Base weights with the adapter folded in, under plain GPT-2 names (for the sampler)."""
        self.peft.merge_adapter()
        try:
            sd = self.peft.get_base_model().state_dict()
            return {
                k.replace(".base_layer.", "."): v.clone() for k, v in sd.items() if ".lora_" not in k
            }
        finally:
            self.peft.unmerge_adapter()

    def reset(self) -> None:
        """Back to the identity adapter (LoRA's B = 0): the base model exactly."""
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.peft, self.initial)
        self.policy.refresh(self.merged_state_dict())

    def adapt(self, problem: Problem) -> float:
        """Fine-tune the adapter on generated problems like ``problem``; returns the last loss."""
        cfg, policy = self.cfg, self.policy
        seed = derive_seed(cfg.seed, "tt-si", problem.id) or 0
        if cfg.level == "gold":
            if problem.difficulty is None:
                raise ValueError(f"tt-si level=gold: problem {problem.id!r} has no difficulty")
            level = problem.difficulty
        else:
            level = infer_level(self.task, problem.prompt, seed=seed)
        similar = self.task.generate(cfg.similar, level, seed)
        data = [
            (policy.encode_prompt(p.prompt),
             policy.tokenizer.encode(self.solver.solve(p), add_special_tokens=False) + [policy.eos_id])
            for p in similar
        ]
        params = [p for p in self.peft.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        gen = torch.Generator().manual_seed(seed)
        loss = torch.zeros(())
        for _ in range(cfg.lora_steps):
            batch = [data[i] for i in torch.randperm(len(data), generator=gen)[: cfg.batch_size].tolist()]
            st = policy.token_stats([a for a, _ in batch], [b for _, b in batch])
            loss = -(st.logp.sum() / st.mask.sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
        policy.refresh(self.merged_state_dict())
        return loss.item()

    def sample_keys(self, problem: Problem, tag: str) -> list[str | None]:
        cfg = self.cfg
        texts = self.policy.sample_texts(
            [problem.prompt], cfg.samples, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
            seed=derive_seed(cfg.seed, tag, problem.id),
        )[0]
        return vote_keys(self.task, problem, texts)

    def solve(self, problem: Problem) -> dict[str, Any]:
        keys = self.sample_keys(problem, "before")
        u = margin(keys)
        before = majority(keys)[0]
        result = {"margin": u, "adapted": u < self.cfg.tau, "before_correct": key_correct(self.task, problem, before)}
        if u >= self.cfg.tau:
            return {**result, "correct": result["before_correct"], "loss": None}
        try:
            loss = self.adapt(problem)
            after = majority(self.sample_keys(problem, "after"))[0]
        finally:
            self.reset()
        return {**result, "correct": key_correct(self.task, problem, after), "loss": loss}


@METHODS.register("tt-si")
@takes_options(TTSIConfig)
def ttsi(request: LearnRequest) -> dict[str, Any]:
    cfg = build_config(TTSIConfig, {"seed": request.seed}, request.options, "tt-si")
    require_answers(request.task, request.problems, "tt-si")
    require_generator(request.task, "tt-si")
    policy = Policy(request.model_dir)
    s = policy.shape
    check_memory(policy.num_parameters, s.n_layer, s.n_embd, s.vocab_size, cfg.batch_size, policy.n_positions)
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    try:
        improver = SelfImprover(policy, request.task, cfg)
        results = solve_each(run, request, improver.solve, "tt-si")
        n = len(results)
        return run.finish(
            {
                "config": asdict(cfg),
                "labels": cfg.labels,
                "problems": n,
                "before": {f"maj@{cfg.samples}": sum(r["before_correct"] for r in results) / n},
                "after": {"accuracy": sum(r["correct"] for r in results) / n},
                "adapted": sum(r["adapted"] for r in results),
                "adapted_before": sum(r["before_correct"] for r in results if r["adapted"]),
                "adapted_after": sum(r["correct"] for r in results if r["adapted"]),
            }
        )
    finally:
        run.close()
