"""Supervised warm start: teach a model a format from (prompt, completion) pairs before RL.

Cross-entropy on the completion tokens only (the prompt is context), on the resumable
:class:`~testtime.learn.loop.StepTrainer`. Used to teach the embedded GPT-2 the agent
action format (``testtime agent demos`` → ``testtime agent teach``) and the cognitive-mode
formats of :mod:`testtime.learn.cognitive_modes` before ``timehc-rl`` /
``system2-rl`` (the paper starts from an instruction-tuned model that can follow them).
Pairs longer than the model's context keep their completion and lose the prompt's
oldest tokens. Evaluation: the mean per-token NLL of the completions of the first
``eval_pairs`` pairs, which are never trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from testtime.learn.common import RunDir, check_memory
from testtime.learn.loop import StepTrainer
from testtime.learn.policy import Policy
from testtime.store import fingerprint, weights_hash


@dataclass
class SFTConfig:
    steps: int = 500
    batch_size: int = 16
    lr: float = 3e-4
    grad_clip: float = 1.0
    eval_pairs: int = 64
    checkpoint_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_pairs", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class SFTTrainer(StepTrainer):
    description = "sft"

    def __init__(self, policy: Policy, pairs: Sequence[tuple[str, str]], cfg: SFTConfig, run: RunDir, *,
                 show_progress: bool = True) -> None:
        super().__init__(policy, run, steps=cfg.steps, checkpoint_every=cfg.checkpoint_every,
                         lr=cfg.lr, grad_clip=cfg.grad_clip, show_progress=show_progress)
        if len(pairs) <= cfg.eval_pairs:
            raise ValueError(f"need more than eval_pairs={cfg.eval_pairs} pairs to train, got {len(pairs)}")
        self.cfg = cfg
        examples = [self._encode(p, c) for p, c in pairs]
        self.held_out, self.examples = examples[:cfg.eval_pairs], examples[cfg.eval_pairs:]
        s = policy.shape
        check_memory(policy.num_parameters, s.n_layer, s.n_embd, s.vocab_size, cfg.batch_size,
                     policy.n_positions)

    def _encode(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        p = self.policy
        done = p.tokenizer.encode(completion, add_special_tokens=False) + [p.eos_id]
        if len(done) >= p.n_positions:
            raise ValueError(f"a completion of {len(done)} tokens does not fit the "
                             f"{p.n_positions}-token context")
        ids = p.encode_prompt(prompt)
        return ids[-(p.n_positions - len(done)):], done

    def _nll(self, batch: Sequence[tuple[list[int], list[int]]]) -> torch.Tensor:
        stats = self.policy.token_stats([a for a, _ in batch], [b for _, b in batch])
        return -stats.logp.sum() / stats.mask.sum()

    def step(self, step: int) -> dict[str, float]:
        order = torch.randperm(len(self.examples), generator=torch.Generator().manual_seed(self.cfg.seed + step))
        loss = self._nll([self.examples[i] for i in order[: self.cfg.batch_size].tolist()])
        out = {"loss": loss.item(), "grad_norm": self.apply(loss)}
        self.policy.refresh()
        return out

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        b = self.cfg.batch_size
        chunks = [self.held_out[i:i + b] for i in range(0, len(self.held_out), b)]
        nll = sum(self._nll(c).item() * len(c) for c in chunks) / len(self.held_out)
        return {"nll": nll, "pairs": len(self.held_out)}

    def note(self, stats: dict[str, float]) -> str:
        return f"loss {stats['loss']:.3f}"


def teach(model_dir: str | Path, pairs: Sequence[tuple[str, str]], out: str | Path, cfg: SFTConfig, *,
          show_progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``model_dir`` on ``pairs`` into ``out/model`` (rerun to resume)."""
    policy = Policy(model_dir)
    config = {"kind": "sft", "model": str(Path(model_dir).resolve()),
              "model_weights": weights_hash(Path(model_dir)), "data": fingerprint(list(pairs)),
              "config": asdict(cfg)}
    run = RunDir(out, config, Path(model_dir))
    try:
        result = SFTTrainer(policy, pairs, cfg, run, show_progress=show_progress).train()
        result.pop("log")
        return run.finish({"config": asdict(cfg), "pairs": len(pairs), "labels": "none", **result})
    finally:
        run.close()
