"""The compact CIFAR-10 ResNet-9 (BatchNorm or GroupNorm) of the ``onecycle`` recipe.

The network follows the ResNet-9 design of fast CIFAR training (Page, "How to train
your ResNet", 2018): a conv stem, three stages that each downsample by max-pooling, two
of them with a residual block, global max-pooling and a scaled linear head. Widths are
narrower than the original so that a few epochs fit one CPU core. Normalisation of the
inputs lives inside the model: callers pass float images in [0, 1], NCHW.
"""

from __future__ import annotations

import torch
from torch import nn

from testtime.zoo.cifar_config import CifarConfig


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
