"""The corruption registry: names, severities and the 32×32 parameter table's entries.

Each corruption module registers its functions with :func:`register` (name, one
parameter entry per severity 1..5); :data:`CORRUPTIONS` creates them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from testtime.registry import Registry

SIZE = 32
SEVERITIES = (1, 2, 3, 4, 5)
STANDARD = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = STANDARD + EXTRA

# A corruption maps (x float32 [N,32,32,3] in [0,1], one Generator per image,
# severity parameters) to a float array in [0,1] units (clipped afterwards).
CorruptionFn = Callable[[np.ndarray, list[np.random.Generator], Any], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: CorruptionFn
    params: tuple  # one entry per severity 1..5


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register(name: str, *params: Any) -> Callable[[CorruptionFn], CorruptionFn]:
    assert name in ALL and len(params) == len(SEVERITIES)

    def deco(fn: CorruptionFn) -> CorruptionFn:
        CORRUPTIONS.register(name)(lambda: Corruption(name, fn, params))
        return fn

    return deco
