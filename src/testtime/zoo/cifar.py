"""Compact CIFAR-10 ResNets (BatchNorm and GroupNorm) and their CPU training recipe.

The network follows the ResNet-9 design of fast CIFAR training (Page, "How to train
your ResNet", 2018): a conv stem, three stages that each downsample by max-pooling, two
of them with a residual block, global max-pooling and a scaled linear head. Widths are
narrower than the original so that a few epochs fit one CPU core. Normalisation of the
inputs lives inside the model: callers pass float images in [0, 1], NCHW.

Training: SGD with Nesterov momentum, a one-cycle (linear up, linear down) learning rate,
label smoothing, random crop (reflect padding 4) and horizontal flips. Each epoch is
checkpointed atomically and a killed run resumes bit-for-bit from the last epoch.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from testtime.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

# Per-channel statistics of the CIFAR-10 training images (the usual constants).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass
class CifarConfig:
    """Architecture + training hyperparameters; saved as ``config.json`` next to the weights."""

    arch: str = "resnet9"
    norm: str = "bn"  # "bn" | "gn"
    widths: tuple[int, ...] = (32, 64, 128, 256)
    groups: int = 8  # GroupNorm groups (gn only)
    num_classes: int = 10
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    head_scale: float = 0.125
    # training
    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup_frac: float = 0.25
    seed: int = 0
    eval_every: int = 2
    # bfloat16 autocast for the training passes: ~2x faster convolutions on CPUs with
    # AVX512-BF16/AMX; weights, optimizer and evaluation stay float32.
    bf16: bool = True
    # the fast recipe (testtime.zoo.cifar_fast): "onecycle" is the ResNet-9 loop below
    recipe: str = "onecycle"  # "onecycle" | "airbench" | "adamw"
    lr_ends: tuple[float, ...] = (0.0, 0.0)  # lr factor at the start and the end
    bias_scaler: float = 1.0  # lr multiplier of the norm biases (airbench: 64)
    lookahead: bool = False
    translate: int = 4  # random translation / crop padding, pixels
    alternate_flip: bool = False
    whiten_bias_epochs: int = 0
    bn_momentum: float = 0.1
    # ViT shape (arch "vit"; the token width is widths[0])
    patch: int = 4
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 2.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> CifarConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; valid: {sorted(known)}")
        d = dict(d)
        for key in ("widths", "mean", "std", "lr_ends"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# The trainable models, by the name used on the command line and in the weights folder.
MODELS: dict[str, CifarConfig] = {
    # Epochs sized to the shared 2-core machine: the shipped weights come from these defaults.
    "resnet-bn": CifarConfig(norm="bn", epochs=4),
    "resnet-gn": CifarConfig(norm="gn", epochs=4, widths=(24, 48, 96, 192)),
    # Standard source models (plain cross-entropy, plain linear head): the airbench94
    # recipe (testtime.zoo.cifar_fast), epochs sized to <= 150 min on 2 CPU threads
    # (measured on the shared AVX2 machine under load ~7: airnet 34 s per 1,024-image step,
    # vit 6.1 s per 256, one thread; an unloaded core is ~3.5x faster).
    # float32: bfloat16 autocast is ~5x *slower* on CPUs without AVX512-BF16/AMX (AVX2).
    "airnet-bn": CifarConfig(
        arch="airnet", norm="bn", widths=(64, 256, 256), head_scale=1 / 9, epochs=12,
        batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153, label_smoothing=0.0,
        warmup_frac=0.23, recipe="airbench", lr_ends=(0.2, 0.07), bias_scaler=64.0,
        lookahead=True, translate=2, alternate_flip=True, whiten_bias_epochs=3,
        bn_momentum=0.4, eval_every=4, bf16=False,
    ),
    "airnet-gn": CifarConfig(
        arch="airnet", norm="gn", groups=8, widths=(64, 256, 256), head_scale=1 / 9,
        epochs=12, batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153,
        label_smoothing=0.0, warmup_frac=0.23, recipe="airbench", lr_ends=(0.2, 0.07),
        bias_scaler=64.0, lookahead=True, translate=2, alternate_flip=True,
        whiten_bias_epochs=3, eval_every=4, bf16=False,
    ),
    "vit-ln": CifarConfig(
        arch="vit", norm="ln", widths=(128,), patch=4, depth=6, heads=4, mlp_ratio=2.0,
        head_scale=1.0, epochs=20, batch_size=256, lr=2e-3, weight_decay=0.05,
        label_smoothing=0.0, warmup_frac=0.1, recipe="adamw", lr_ends=(0.0, 0.0),
        translate=4, eval_every=5, bf16=False,
    ),
}  # fmt: skip


def _norm(kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(groups, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; valid: bn, gn")


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str, groups: int, pool: bool = False) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
        if pool:  # pool before the norm: normalise (and pay for) a 4x smaller map
            layers.append(nn.MaxPool2d(2))
        layers += [_norm(norm, cout, groups), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class Residual(nn.Module):
    def __init__(self, channels: int, norm: str, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, norm, groups),
            ConvNormAct(channels, channels, norm, groups),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, stored as buffers so that they travel with the weights."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CifarResNet(nn.Module):
    """ResNet-9-style classifier: float [0, 1] NCHW images in, logits out.

    ``features(x)`` returns the pooled penultimate features (used by feature-based
    adaptation methods); ``fc`` is the linear head.
    """

    def __init__(self, config: CifarConfig) -> None:
        super().__init__()
        if len(config.widths) != 4:
            raise ValueError(f"resnet9 needs 4 widths, got {config.widths}")
        w0, w1, w2, w3 = config.widths
        n, g = config.norm, config.groups
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        self.body = nn.Sequential(
            ConvNormAct(3, w0, n, g),
            ConvNormAct(w0, w1, n, g, pool=True),
            Residual(w1, n, g),
            ConvNormAct(w1, w2, n, g, pool=True),
            ConvNormAct(w2, w3, n, g, pool=True),
            Residual(w3, n, g),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(w3, config.num_classes, bias=False)
        self.head_scale = config.head_scale

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The small head scale (Page 2018) keeps early logits soft, which helps short schedules.
        return self.fc(self.features(x)) * self.head_scale


def build_model(config: CifarConfig) -> nn.Module:
    """The network of ``config.arch``: resnet9 (here), airnet or vit (:mod:`cifar_nets`)."""
    from testtime.zoo.cifar_nets import AirNet, CifarViT

    archs = {"resnet9": CifarResNet, "airnet": AirNet, "vit": CifarViT}
    if config.arch not in archs:
        raise ValueError(f"unknown arch {config.arch!r}; valid: {', '.join(archs)}")
    return archs[config.arch](config)


def bf16_supported() -> bool:
    """bfloat16 units on this CPU (AVX512-BF16/AMX): autocast is ~2x faster with them and
    ~5x *slower* without (emulated), so ``bf16`` configs train in float32 there."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _config_for(name: str) -> CifarConfig:
    if name not in MODELS:
        raise ValueError(f"unknown CIFAR model {name!r}; valid: {', '.join(sorted(MODELS))}")
    return CifarConfig.from_dict(asdict(MODELS[name]))


# ---------------------------------------------------------------------------------------------
# Loading shipped weights


def weights_dir(name: str) -> Path:
    """Folder of the shipped weights of ``name`` (e.g. ``resnet-bn`` -> ``weights/resnet-bn-cifar10``)."""
    _config_for(name)
    return WEIGHTS_DIR / f"{name}-cifar10"


def load_cifar_model(name: str = "resnet-bn", path: str | Path | None = None) -> nn.Module:
    """The shipped (or ``path``'s) CIFAR-10 model in eval mode; inputs float [0, 1] NCHW."""
    from safetensors.torch import load_file

    folder = Path(path) if path is not None else weights_dir(name)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not (cfg_path.is_file() and w_path.is_file()):
        raise FileNotFoundError(
            f"no weights for {name!r} in {folder} (train them: testtime zoo train {name})"
        )
    cfg = json.loads(cfg_path.read_text())
    config = CifarConfig.from_dict(cfg["config"])
    model = build_model(config)
    model.load_state_dict(load_file(str(w_path)))
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Training


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


def to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float [0, 1] NCHW."""
    t = torch.as_tensor(images)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 NHWC ``images``."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = to_float(images[i : i + batch_size]).contiguous(memory_format=torch.channels_last)
        correct += (model(x).argmax(1) == torch.as_tensor(labels[i : i + batch_size])).sum().item()
    model.train(was_training)
    return correct / len(images)


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


def _save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def export_model(
    model: nn.Module, out_dir: Path, name: str, card: dict, readme: str | None = None
) -> None:
    """Write ``model.safetensors``, ``config.json`` and a model card ``README.md``
    (``readme``, else the ResNet-9 card of :func:`model_card`)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    buf_path = out_dir / ".model.safetensors.tmp"
    save_file(tensors, str(buf_path))
    atomic_write_bytes(out_dir / "model.safetensors", buf_path.read_bytes())
    buf_path.unlink()
    atomic_write_json(out_dir / "config.json", {"name": name, "config": asdict(model.config)})
    atomic_write_text(out_dir / "README.md", readme or model_card(name, model.config, card))


def model_card(name: str, cfg: CifarConfig, card: dict) -> str:
    n_params = card.get("params", 0)
    hist = "\n".join(
        f"| {h['epoch']} | {h['train_loss']:.3f} | "
        + (f"{h['test_acc'] * 100:.2f} |" if "test_acc" in h else "– |")
        for h in card.get("history", [])
    )
    return f"""# {name}-cifar10

A compact ResNet-9-style CIFAR-10 classifier with {"BatchNorm" if cfg.norm == "bn" else f"GroupNorm ({cfg.groups} groups)"},
the source model for test-time adaptation experiments in `testtime`.

- Architecture: `{cfg.arch}`, widths {list(cfg.widths)}, {n_params:,} parameters; input float
  [0, 1] NCHW, normalisation (CIFAR-10 mean/std) inside the model; logits out.
- Data: CIFAR-10 train split (50,000 images, the project's JPEG copy), random crop
  (reflect pad 4) + horizontal flip.
- Training: {cfg.epochs} epochs, batch {cfg.batch_size}, SGD Nesterov (momentum {cfg.momentum}),
  one-cycle LR peak {cfg.lr} ({cfg.warmup_frac:.0%} warm-up), weight decay {cfg.weight_decay},
  label smoothing {cfg.label_smoothing}, seed {cfg.seed}, one CPU thread{", bfloat16 autocast" if cfg.bf16 else ""}.
- Wall time: {card.get("wall_s", 0) / 60:.1f} min of training (one thread on a shared, busy 2-core machine;
  about 3 CPU-minutes per epoch with bfloat16 on an AVX512-BF16 core).
- Clean CIFAR-10 test accuracy: **{card.get("test_acc", float("nan")) * 100:.2f}%** (10,000 images;
  the test split was only measured, never used for choices).
- Reproduce: `testtime zoo train {name} --steps {cfg.epochs} --seed {cfg.seed}`
- Load: `testtime.zoo.load_cifar_model("{name}")`
- Limitations: a short schedule, sized to the shared CPU it was trained on; a longer one
  (`--steps <epochs>`) gives a more accurate source model.

| epoch | train loss | test acc % |
|---|---|---|
{hist}
"""


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

    cfg = _config_for(name)
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
        from testtime.zoo.cifar_fast import train_fast

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
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        if state["config"] != asdict(cfg):
            raise ValueError(f"{ckpt_path} was trained with a different config; use a new --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start_epoch, history, wall = state["epoch"], state["history"], state["wall_s"]
        log(f"resuming {name} from epoch {start_epoch}/{cfg.epochs}")
    elif ckpt_path.exists():
        raise ValueError(f"{ckpt_path} exists; pass --resume to continue or choose a new --out")

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
            _save_checkpoint(
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
