"""Training LPN with gradient search in the loop (Macfarlane & Bonnet 2024, §3.3):
per task, the example pairs' posterior means (reparameterised samples) are averaged
into a latent, refined by ``inner_steps`` of gradient ascent on the examples'
log-likelihood (first order: the step's gradient is not differentiated), and the
decoder must then produce the held-out query's output; plus ``beta`` x the
posteriors' KL to N(0, I). Checkpoints (weights, optimizer, step, noise generator,
log, training seconds) are written atomically every ``checkpoint_every`` steps; a
batch is a function of its step, so a run killed anywhere and rerun continues from
its last checkpoint to exactly the uninterrupted result; a non-finite loss or gradient
stops it before any step or checkpoint takes it in. Deviations: MLPs (see
:mod:`.model`), one first-order inner step by default, constant learning rate, gradient
clipping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from testtime.programs.lpn.grids import sample_tasks
from testtime.programs.lpn.model import LPN, LPNConfig


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 25000  # training steps (rerun with more to extend a run)
    batch: int = 64  # tasks per step
    examples: int = 3  # pairs shown per task (plus one query)
    inner_steps: int = 1  # gradient-ascent steps on the latent inside training
    inner_lr: float = 0.1  # their step size
    lr: float = 2e-3  # Adam
    beta: float = 1e-3  # weight of the posteriors' KL
    clip: float = 1.0  # gradient-norm clipping (without it lr 3e-3 diverged to NaN by step 800)
    seed: int = 0
    checkpoint_every: int = 500  # steps between checkpoints (a kill loses at most these)

    def __post_init__(self) -> None:
        if min(self.steps, self.batch, self.examples, self.checkpoint_every) < 1 or self.inner_steps < 0:
            raise ValueError("steps, batch, examples and checkpoint_every must be >= 1, inner_steps >= 0")
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")


def _batch(cfg: TrainConfig, model: LPN, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    m = model.config
    tasks = sample_tasks(cfg.batch, "train", k=cfg.examples, size=m.size, colors=m.colors,
                         seed=cfg.seed * 1_000_003 + step)
    return (torch.tensor(np.stack([t.inputs for t in tasks])),
            torch.tensor(np.stack([t.outputs for t in tasks])))


def loss_of(model: LPN, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
            generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of tasks ``x, y`` of shape (B, k + 1, H, W) (last pair: query)."""
    ex_x, ex_y, q_x, q_y = x[:, :-1], y[:, :-1], x[:, -1:], y[:, -1:]
    mean, logvar = model.encode(ex_x, ex_y)
    noise = torch.randn(mean.shape, generator=generator)
    z = (mean + (0.5 * logvar).exp() * noise).mean(1, keepdim=True)  # (B, 1, L)
    for _ in range(cfg.inner_steps):
        probe = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.log_likelihood(ex_x, ex_y, probe).sum(), probe)
        z = z + cfg.inner_lr * grad
    recon = -model.log_likelihood(q_x, q_y, z).mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
    return recon + cfg.beta * kl, {"recon": recon.item(), "kl": kl.item()}


# Settings a resumed run may change: its length and how often it saves.
RESUMABLE = ("steps", "checkpoint_every")


def train(out: Path, cfg: TrainConfig, model_config: LPNConfig | None = None,
          on_step: Callable[[dict], None] | None = None) -> tuple[LPN, list[dict]]:
    """Train (or resume) into ``out/checkpoint.pt``; the model and the per-step log
    (``on_step`` sees each new row: step, loss, recon, kl, seconds of training so far, threads)."""
    path = Path(out) / "checkpoint.pt"
    model = LPN(model_config)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    step, log, seconds = 0, [], 0.0
    if path.exists():
        state = torch.load(path, weights_only=False)
        fixed = {k: v for k, v in asdict(cfg).items() if k not in RESUMABLE}
        if ({k: v for k, v in state["config"].items() if k not in RESUMABLE} != fixed
                or state["model_config"] != asdict(model.config)):
            raise ValueError(f"{path} was trained with other settings; use another folder")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, log, seconds = state["step"], state["log"][:state["step"]], state.get("seconds", 0.0)
    start = time.monotonic() - seconds
    while step < cfg.steps:
        x, y = _batch(cfg, model, step)
        loss, stats = loss_of(model, x, y, cfg, generator)
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):  # before the step: nothing saved is NaN
            raise ValueError(
                f"LPN training diverged at step {step + 1} (loss {loss.item()}); {path} keeps the "
                "last checkpoint: lower --lr or --clip and train into a new folder")
        opt.step()
        step += 1
        log.append({"step": step, "loss": loss.item(), **stats,
                    "seconds": round(time.monotonic() - start, 3), "threads": torch.get_num_threads()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(".checkpoint.pt.tmp")
            torch.save({"config": asdict(cfg), "model_config": asdict(model.config),
                        "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "generator": generator.get_state(), "step": step, "log": log,
                        "seconds": log[-1]["seconds"]}, tmp)
            os.replace(tmp, path)
        if on_step is not None:
            on_step(log[-1])
    return model, log
