"""CIFAR-10 source models for test-time adaptation: the public API.

- :mod:`.cifar_config` — :class:`CifarConfig` and the registered models (:data:`MODELS`);
- :mod:`.cifar_resnet` — the ResNet-9 (BatchNorm / GroupNorm); :mod:`.cifar_nets` — the
  airbench94 convnet and the LayerNorm ViT;
- :mod:`.cifar_weights` — :func:`build_model`, :func:`load_cifar_model` (shipped weights),
  :func:`export_model`; :mod:`.cifar_cards` — the model cards;
- :mod:`.cifar_eval` — clean accuracy and calibration;
- :mod:`.cifar_train` — :func:`train_cifar` (the ResNet-9 ``onecycle`` recipe) and
  :mod:`.cifar_fast` (the airbench / AdamW recipes it dispatches to).
"""

from __future__ import annotations

from testtime.zoo.cifar_cards import fast_model_card, model_card
from testtime.zoo.cifar_config import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    MODELS,
    WEIGHTS_DIR,
    CifarConfig,
    bf16_supported,
    config_for,
)
from testtime.zoo.cifar_eval import calibration, evaluate, to_float
from testtime.zoo.cifar_resnet import CifarResNet, ConvNormAct, Normalize, Residual
from testtime.zoo.cifar_train import augment, train_cifar
from testtime.zoo.cifar_weights import (
    build_model,
    export_model,
    load_cifar_model,
    save_checkpoint,
    weights_dir,
)

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "MODELS", "WEIGHTS_DIR", "CifarConfig", "CifarResNet",
    "ConvNormAct", "Normalize", "Residual", "augment", "bf16_supported", "build_model",
    "calibration", "config_for", "evaluate", "export_model", "fast_model_card",
    "load_cifar_model", "model_card", "save_checkpoint", "to_float", "train_cifar",
    "weights_dir",
]  # fmt: skip
