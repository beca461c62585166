"""Training a CIFAR-10 source model: the ResNet-9 ``onecycle`` recipe here, the
airbench/AdamW recipes in :mod:`testtime.zoo.cifar_fast`.

Onecycle: SGD with Nesterov momentum, a one-cycle (linear up, linear down) learning rate,
label smoothing, random crop (reflect padding 4) and horizontal flips. Each epoch is
checkpointed atomically and a killed run resumes bit-for-bit from the last epoch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from testtime.store.atomic import atomic_write_json
from testtime.zoo.cifar_config import CifarConfig, bf16_supported, config_for
from testtime.zoo.cifar_eval import evaluate
from testtime.zoo.cifar_fast import train_fast
from testtime.zoo.cifar_weights import build_model, export_model, load_checkpoint, save_checkpoint


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (reflect padding ``pad``) and horizontal flip of a float NCHW batch."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def _lr_at(step: int, total: int, cfg: CifarConfig) -> float:
    warm = max(1, int(cfg.warmup_frac * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (total - step) / max(1, total - warm))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # No weight decay on norm affine parameters (standard for short schedules).
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def train_cifar(
    name: str,
    out_dir: str | Path,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    limit: int | None = None,
    threads: int | None = 1,
    progress: bool = True,
    overrides: dict | None = None,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train CIFAR model ``name`` into ``out_dir``; returns the model card dict.

    ``out_dir/checkpoint.pt`` is written atomically after every epoch; with ``resume``
    training continues from it. At the end the exported files (``model.safetensors``,
    ``config.json``, ``README.md``) land in ``out_dir``. ``limit`` caps the number of
    training images (for quick trials); ``data`` = (train_x, train_y, test_x, test_y)
    uint8 NHWC arrays overrides the shared CIFAR-10 copy. Configs with another
    ``recipe`` (airnet-*, vit-ln) train with :func:`testtime.zoo.cifar_fast.train_fast`,
    checkpointed every 25 steps; ``max_steps`` stops that trainer early (resumable).
    """
    from testtime.data.cifar10 import load_cifar10

    cfg = config_for(name)
    explicit = {k: v for k, v in {"epochs": epochs, "seed": seed}.items() if v is not None}
    for key, value in {**(overrides or {}), **explicit}.items():
        if value is not None:
            if key not in cfg.__dataclass_fields__:
                raise ValueError(f"unknown option {key!r}")
            setattr(cfg, key, tuple(value) if isinstance(value, list) else value)
    if cfg.epochs < 1:
        raise ValueError("epochs must be >= 1")
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"

    if data is None:
        tx, ty = load_cifar10("train")
        vx, vy = load_cifar10("test")
    else:
        tx, ty, vx, vy = data
    if limit is not None:
        # An evenly spread subset keeps all classes (the arrays are class-sorted).
        idx = np.linspace(0, len(tx) - 1, min(limit, len(tx))).astype(int)
        tx, ty = tx[idx], ty[idx]
    if cfg.recipe != "onecycle":
        return train_fast(name, cfg, out, resume=resume, train=(tx, ty), test=(vx, vy),
                          progress=progress, max_steps=max_steps, log=log)  # fmt: skip
    train_x = torch.from_numpy(np.ascontiguousarray(tx)).permute(0, 3, 1, 2).contiguous()  # uint8
    train_y = torch.from_numpy(np.asarray(ty, dtype=np.int64))

    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        _param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=True
    )
    steps_per_epoch = math.ceil(len(train_x) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    start_epoch, history, wall = 0, [], 0.0
    state = load_checkpoint(ckpt_path, cfg, model, opt, resume)
    if state is not None:
        start_epoch, history, wall = state["epoch"], state["history"], state["wall_s"]
        log(f"resuming {name} from epoch {start_epoch}/{cfg.epochs}")

    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    )  # fmt: skip
    model.train()
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(
            f"train {name}", total=total, completed=start_epoch * steps_per_epoch, info=""
        )
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            # Per-epoch generator: shuffling and augmentation do not depend on where a run resumed.
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            order = torch.randperm(len(train_x), generator=gen)
            loss_sum, seen = 0.0, 0
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x = augment(train_x[idx].float().div_(255.0), gen).contiguous(
                    memory_format=torch.channels_last
                )
                y = train_y[idx]
                for group in opt.param_groups:
                    group["lr"] = _lr_at(epoch * steps_per_epoch + b, total, cfg)
                with torch.autocast(
                    "cpu", dtype=torch.bfloat16, enabled=cfg.bf16 and bf16_supported()
                ):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(y)
                seen += len(y)
                bar.update(task, advance=1, info=f"epoch {epoch + 1} loss {loss_sum / seen:.3f}")
            wall += time.perf_counter() - t0
            entry = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "wall_s": round(wall, 1)}
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                entry["test_acc"] = evaluate(model, vx, vy)
                model.train()
            history.append(entry)
            save_checkpoint(
                ckpt_path,
                {
                    "config": asdict(cfg), "model": model.state_dict(), "opt": opt.state_dict(),
                    "epoch": epoch + 1, "history": history, "wall_s": wall,
                },
            )  # fmt: skip
            log(json.dumps(entry))

    model.eval()
    card = {
        "params": sum(p.numel() for p in model.parameters()),
        "history": history,
        "wall_s": wall,
        "test_acc": history[-1].get("test_acc", float("nan")),
        "train_images": len(train_x),
        # The keys `testtime zoo train` prints: no checkpoint selection, the last epoch ships.
        "steps_trained": steps_per_epoch * cfg.epochs,
        "selected": f"last epoch ({cfg.epochs})",
    }
    export_model(model.to(memory_format=torch.contiguous_format), out, name, card)
    atomic_write_json(out / "card.json", card)
    return card
