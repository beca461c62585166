"""CIFAR-10 source models by name: architecture + training hyper-parameters (:class:`CifarConfig`).

The configs ship as ``config.json`` next to the weights; ``checkpoint.pt`` of a training
run stores ``asdict(config)`` and a resume is refused when it differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

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


def bf16_supported() -> bool:
    """bfloat16 units on this CPU (AVX512-BF16/AMX): autocast is ~2x faster with them and
    ~5x *slower* without (emulated), so ``bf16`` configs train in float32 there."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def config_for(name: str) -> CifarConfig:
    """A fresh copy of the registered config ``name`` (clear error for unknown names)."""
    if name not in MODELS:
        raise ValueError(f"unknown CIFAR model {name!r}; valid: {', '.join(sorted(MODELS))}")
    return CifarConfig.from_dict(asdict(MODELS[name]))
