"""A resumable trainer for the tiny sequence models of :mod:`testtime.layers`.

Batches are a pure function of the step (``batches(step)``), so a run killed at any point
and restarted from its last checkpoint follows exactly the same trajectory as one that
was never interrupted (tests/layers/test_train.py). The run directory holds the run store
(a directory made for another config is refused), ``checkpoint.pt`` (model, AdamW state,
step, log; written atomically every ``checkpoint_every`` steps) and ``log.jsonl``.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from testtime.layers.recall import IGNORE
from testtime.store import RunStore, atomic_write_bytes, atomic_write_text

Batches = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainConfig:
    steps: int = 2000
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if self.steps < 1 or self.checkpoint_every < 1 or self.warmup < 0:
            raise ValueError("steps and checkpoint_every must be >= 1, warmup >= 0")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the scored positions (targets != -100)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def schedule(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to 10 % of the peak learning rate."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))


class NonFiniteLoss(RuntimeError):
    """The loss or gradient became NaN/inf; the last checkpoint is kept."""


def train(
    model: nn.Module,
    batches: Batches,
    cfg: TrainConfig,
    out: str | Path,
    identity: dict[str, Any],
    *,
    params: list[nn.Parameter] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[dict[str, float]]:
    """Train ``params`` (default: all of the model's) to ``cfg.steps`` steps, resuming from
    ``out``; returns the log (one row per step). ``identity`` (the model/data config) and
    ``cfg`` pin the run. ``stop_after`` ends the call after that many steps this call
    (as a kill would, but at a checkpoint), for tests and time-boxed runs. ``loss_fn(model,
    tokens, targets)`` replaces the default cross-entropy of ``model(tokens)``."""
    out = Path(out)
    store = RunStore(out, json.loads(json.dumps({"identity": identity, "train": asdict(cfg)})))
    store.close()
    params = list(model.parameters()) if params is None else params
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path = out / "checkpoint.pt"
    step, log = 0, []
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, log = state["step"], state["log"]
    done_here = 0
    while step < cfg.steps and (stop_after is None or done_here < stop_after):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * schedule(step, cfg)
        t0 = time.perf_counter()
        tokens, targets = batches(step)
        loss = loss_fn(model, tokens, targets) if loss_fn else lm_loss(model(tokens), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            raise NonFiniteLoss(f"non-finite loss/gradient at step {step + 1}; kept checkpoint of step "
                                f"{log[-1]['step'] if log else 0}")
        opt.step()
        step, done_here = step + 1, done_here + 1
        row = {"step": step, "loss": loss.item(), "grad_norm": norm.item(),
               "tokens": tokens.numel(), "wall_s": time.perf_counter() - t0}
        log.append(row)
        if on_step is not None:
            on_step(step, row)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                        "step": step, "log": log})
            atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in log))
    return log


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
