"""The fast CIFAR-10 training recipe (airbench94, Jordan 2024) for standard source models.

What is kept from airbench94: the :class:`~testtime.zoo.cifar_nets.AirNet` network with
patch-whitening initialisation, Nesterov SGD with *decoupled* hyper-parameters (``lr``
and ``weight_decay`` per 1,024 examples, summed loss), a 64× learning rate for the norm
biases (``bias_scaler``) with frozen norm weights, the whitening bias trained for the
first ``whiten_bias_epochs`` only, a warm-up 0.2→1 over 23% of the steps then a linear
decay to 0.07, Lookahead/EMA every 5 steps (decay 0.95⁵·(t/T)³), random translation by
``translate`` pixels (reflect padding) and *alternating* flips (a fixed random flip per
image, all images flipped on odd epochs). Changed for a standard TTA source model: plain
cross-entropy (label smoothing 0; airbench uses 0.2), the 1/9 logit scale folded into the
head at export (a plain linear head ships), no test-time augmentation in the reported
accuracy, more epochs to make up for both. ``recipe="adamw"`` (the ViT) uses AdamW with
the same warm-up/decay shape (from 0 to 0) and mean loss instead.

Resumable from any kill point: ``checkpoint.pt`` (model, optimizer, Lookahead state, step)
is written atomically every ``ckpt_every`` steps and at each epoch end; every random draw
(order, flips, shifts) comes from generators seeded by (seed, epoch, batch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from testtime.store.atomic import atomic_write_json
from testtime.zoo.cifar_cards import fast_model_card
from testtime.zoo.cifar_config import CifarConfig, bf16_supported
from testtime.zoo.cifar_eval import calibration, evaluate, to_float
from testtime.zoo.cifar_weights import build_model, export_model, load_checkpoint, save_checkpoint


def lr_factor(step: int, total: int, warmup_frac: float, start: float, end: float) -> float:
    """Linear warm-up from ``start`` to 1 over ``warmup_frac`` of the steps, then linear to ``end``."""
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return start + (1.0 - start) * step / warm
    return 1.0 + (end - 1.0) * (step - warm) / max(1, total - warm)


class Lookahead:
    """hlb-CIFAR10/airbench's Lookahead: every few steps the EMA of the (float) state
    moves towards the model by 1 − decay and the model is reset to it."""

    def __init__(self, model: nn.Module) -> None:
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.ema[k].lerp_(v, 1.0 - decay)
                v.copy_(self.ema[k])


def translate(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (reflect padding), per image."""
    if pad == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            m = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            if m.any():
                out[m] = padded[m, :, dy : dy + h, dx : dx + w]
    return out


def _optimizer(model: nn.Module, cfg: CifarConfig, batch_size: int) -> torch.optim.Optimizer:
    if cfg.recipe == "adamw":
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=cfg.lr,
        )  # fmt: skip
    # airbench: lr / weight decay per 1,024 examples, decoupled from the momentum.
    kilostep = 1024 * (1 + 1 / (1 - cfg.momentum))
    lr = cfg.lr / kilostep
    wd = cfg.weight_decay * batch_size / kilostep
    norms = (nn.BatchNorm2d, nn.GroupNorm)
    biases = [m.bias for m in model.modules() if isinstance(m, norms)]
    ids = {id(p) for p in biases}
    other = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    lr_b = lr * cfg.bias_scaler
    return torch.optim.SGD(
        [{"params": biases, "lr": lr_b, "weight_decay": wd / lr_b},
         {"params": other, "lr": lr, "weight_decay": wd / lr}],
        momentum=cfg.momentum, nesterov=True,
    )  # fmt: skip


def train_fast(
    name: str,
    cfg: CifarConfig,
    out: Path,
    *,
    resume: bool,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    progress: bool = True,
    ckpt_every: int = 25,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train ``cfg`` (a CifarConfig with ``recipe`` "airbench" or "adamw") into ``out``.

    ``max_steps`` stops early after that many steps in this call (a checkpoint is
    written; ``resume`` continues) — for timing and trials. Returns the model card dict
    (clean accuracy, ECE, NLL, mean confidence, fraction below E0, wall time)."""
    tx, ty = train
    train_x = torch.from_numpy(np.ascontiguousarray(tx)).permute(0, 3, 1, 2).contiguous()
    train_y = torch.from_numpy(np.asarray(ty, dtype=np.int64))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    if cfg.arch == "airnet":
        model.init_whitening(to_float(tx[np.linspace(0, len(tx) - 1, 5000).astype(int)]))
        for m in model.modules():  # airbench trains the norm biases, not the norm weights
            if isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                m.weight.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    bs = cfg.batch_size
    steps_per_epoch = len(train_x) // bs if len(train_x) >= bs else 1
    total = steps_per_epoch * cfg.epochs
    opt = _optimizer(model, cfg, bs)
    base_lrs = [g["lr"] for g in opt.param_groups]
    look = Lookahead(model) if cfg.lookahead else None
    ckpt_path = out / "checkpoint.pt"
    step, history, wall, loss_sum, seen = 0, [], 0.0, 0.0, 0
    state = load_checkpoint(ckpt_path, cfg, model, opt, resume)
    if state is not None:
        if look is not None:
            look.ema = state["lookahead"]
        step, history, wall = state["step"], state["history"], state["wall_s"]
        loss_sum, seen = state["loss_sum"], state["seen"]
        log(f"resuming {name} at step {step}/{total}")
    out.mkdir(parents=True, exist_ok=True)
    flip_base = torch.rand(len(train_x), generator=torch.Generator().manual_seed(cfg.seed)) < 0.5
    loss_fn = "sum" if cfg.recipe == "airbench" else "mean"

    def save() -> None:
        save_checkpoint(ckpt_path, {
            "config": asdict(cfg), "model": model.state_dict(), "opt": opt.state_dict(),
            "lookahead": None if look is None else look.ema, "step": step,
            "history": history, "wall_s": wall, "loss_sum": loss_sum, "seen": seen,
        })  # fmt: skip

    stop = total if max_steps is None else min(total, step + max_steps)
    model.train()
    t0 = time.perf_counter()
    while step < stop:
        epoch, b = divmod(step, steps_per_epoch)
        if cfg.arch == "airnet":
            model.whiten.bias.requires_grad_(epoch < cfg.whiten_bias_epochs)
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(
            cfg.seed * 1000 + epoch))[b * bs : (b + 1) * bs]  # fmt: skip
        gen = torch.Generator().manual_seed((cfg.seed * 1000 + epoch) * 10_000 + b)
        x = train_x[order].float().div_(255.0)
        flip = flip_base[order] ^ (epoch % 2 == 1) if cfg.alternate_flip else (
            torch.rand(len(order), generator=gen) < 0.5)  # fmt: skip
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        x = translate(x, cfg.translate, gen).contiguous(memory_format=torch.channels_last)
        y = train_y[order]
        factor = lr_factor(step, total, cfg.warmup_frac, *cfg.lr_ends)
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = base * factor
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16 and bf16_supported()):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, reduction=loss_fn,
                               label_smoothing=cfg.label_smoothing)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if look is not None and step % 5 == 0:
            look.update(model, 0.95**5 * (step / total) ** 3)
        loss_sum += loss.item() / (len(y) if loss_fn == "sum" else 1) * len(y)
        seen += len(y)
        end_of_epoch = step % steps_per_epoch == 0
        if end_of_epoch:
            wall += time.perf_counter() - t0
            t0 = time.perf_counter()
            entry = {"epoch": step // steps_per_epoch, "train_loss": loss_sum / seen,
                     "wall_s": round(wall, 1)}  # fmt: skip
            if entry["epoch"] % cfg.eval_every == 0 and step < total:
                entry["test_acc"] = evaluate(model, *test)
                model.train()
            history.append(entry)
            loss_sum, seen = 0.0, 0
            log(json.dumps(entry))
        if end_of_epoch or step % ckpt_every == 0 or step == stop:
            if not end_of_epoch:
                wall += time.perf_counter() - t0
                t0 = time.perf_counter()
            save()
        if progress and step % 10 == 0:
            log(f"step {step}/{total} loss {loss.item() / (len(y) if loss_fn == 'sum' else 1):.3f}")
    if step < total:
        return {"steps": step, "total_steps": total, "wall_s": wall, "finished": False}
    if look is not None:
        look.update(model, 1.0)  # the model becomes the EMA
    model = model.to(memory_format=torch.contiguous_format).eval()
    if cfg.arch == "airnet":
        model.fold_head_scale()
    card = {
        "params": sum(p.numel() for p in model.parameters()),
        "history": history,
        "wall_s": wall,
        "train_images": len(train_x),
        "steps_trained": total,
        "selected": f"last step ({total})",
        **calibration(model, *test),
    }
    card["test_acc"] = card["accuracy"]
    card["test_images"] = len(test[1])
    export_model(model, out, name, card, readme=fast_model_card(name, cfg, card))
    atomic_write_json(out / "card.json", card)
    return card
