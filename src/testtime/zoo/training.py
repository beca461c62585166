"""The pieces every zoo trainer shares (TinyReasoner and -L, its MoE variant, priming):
the common configuration fields, the checkpointed progress, the warm-up + cosine
schedule and checkpoint selection inside a validation pass@1 window."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

LOG_EVERY = 50


@dataclass
class TrainConfig:
    """Optimiser, schedule, sequence length and validation fields of every zoo trainer."""

    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_every: int = 125
    n_positions: int = 512
    valid_problems: int = 64
    valid_samples: int = 4
    window: tuple[float, float] = (0.3, 0.7)


def warmup_cosine(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to ``min_lr_ratio``; reads ``config.steps`` at each
    step, so a run resumed with another ``--steps`` restretches the cosine."""

    def lr_factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        t = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def checkpoint_path(config: TrainConfig, out: Path, name: str, resume: bool) -> Path:
    """``out/name``, after the checks every trainer makes before it builds anything."""
    if config.steps < 1:
        raise ValueError(f"steps must be >= 1, got {config.steps}")
    path = out / name
    if resume and not path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return path


def restore(
    ckpt: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, written_steps: int, steps: int,
) -> tuple[TrainState, Any]:
    """Load a checked checkpoint into the model, optimiser and schedule; returns its
    progress and selected weights, noting a changed run length (the schedule stretches)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    state = TrainState(**ckpt["state"])
    if written_steps != steps:
        state.schedule_changes.append({"at_step": state.step, "from": written_steps, "to": steps})
    return state, ckpt["selected_weights"]


def bf16_supported() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class TrainState:
    """A training run's progress, checkpointed with the weights (TinyReasoner, its
    primed and MoE variants share it)."""

    step: int = 0
    wall_s: float = 0.0
    loss_ema: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    selected: dict[str, float] | None = None
    # Runs resumed with another --steps: {"at_step", "from", "to"} (the cosine is restretched).
    schedule_changes: list[dict[str, int]] = field(default_factory=list)
    # Each (re)start that changed the torch thread count: {"at_step", "threads"}.
    threads: list[dict[str, int]] = field(default_factory=list)


def note_threads(state: TrainState, threads: int) -> None:
    """Record the thread count this (re)start trains with, when it differs from the last."""
    if not state.threads or state.threads[-1]["threads"] != threads:
        state.threads.append({"at_step": state.step, "threads": threads})


def threads_text(info: dict[str, Any]) -> str:
    """The card's "on N CPU thread(s)", per segment when a resume changed the count."""
    segments = info.get("thread_segments") or []
    if len(segments) <= 1:
        return f"on {info['threads']} CPU thread(s)"
    return "on " + ", then ".join(f"{s['threads']} CPU thread(s) from step {s['at_step']}" for s in segments)


def preference(pass1: float, window: tuple[float, float]) -> tuple[int, float]:
    """Checkpoint order: pass@1 inside ``window`` first (the most capable there), else the
    closest to the window's middle."""
    lo, hi = window
    if lo <= pass1 <= hi:
        return (1, pass1)
    return (0, -abs(pass1 - (lo + hi) / 2))
