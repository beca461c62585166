"""What a CIFAR-10-C adaptation benchmark run measures: :class:`BenchConfig`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from testtime.adapt import ADAPT_METHODS
from testtime.data.corruptions import STANDARD
from testtime.data.streams import SETTINGS


@dataclass
class BenchConfig:
    """What to run. ``limit``: images per domain (a seeded subset, the same for every
    method; ``None`` = all). ``source_images``: clean CIFAR-10 *train* images handed to
    methods that take ``source_data`` (EATA's Fisher, CAFA's class statistics, ...)."""

    methods: list[str]
    setting: str = "continual"
    severity: int = 5
    batch_size: int = 200
    limit: int | None = None
    model: str = "resnet-bn"
    seed: int = 0
    guard: bool = False
    guard_options: dict[str, Any] = field(default_factory=dict)
    domains: list[str] = field(default_factory=lambda: list(STANDARD))
    source_images: int = 2000
    imbalance_ratio: float = 500_000.0
    delta: float | None = None
    device: str = "cpu"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.methods:
            raise ValueError("no methods given")
        for name in self.methods:
            ADAPT_METHODS.get(name)  # UnknownName lists the valid ones
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"a method is listed twice: {', '.join(self.methods)}")
        if self.setting not in SETTINGS:
            raise ValueError(f"unknown setting {self.setting!r}; valid: {', '.join(SETTINGS)}")
        if self.severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"severity must be 1..5, got {self.severity}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.source_images < 0:
            raise ValueError(f"source_images must be >= 0, got {self.source_images}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} requested but CUDA is not available")

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a method's numbers (the method list does not)."""
        d = asdict(self)
        del d["methods"]
        return d


def result_key(method: str, guard: bool) -> str:
    return f"{method}+guard" if guard else method
