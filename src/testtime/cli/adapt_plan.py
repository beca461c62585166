"""``testtime adapt --dry-run``: the benchmark's plan and a probed time estimate.

Counts come from the configuration (methods × domains × images per domain, batches).
The probe builds every method on the real source model and times two adaptation steps
on one batch of ``min(batch size, 64)`` random images (the first step excluded:
it takes the source snapshot), plus the method's set-up on 64 clean images scaled to
``source_images``; the estimate extrapolates per image. Deviations: corruption
generation (once per domain, shared by all methods) is not included, and a probe batch
smaller than the run's errs long.
"""

from __future__ import annotations

import inspect
import math
import time

import torch

from testtime.adapt import ADAPT_METHODS
from testtime.adapt.benchmark import BenchConfig, build_method, load_source_data
from testtime.cli.plan import duration

PROBE_SETUP_IMAGES = 64


def _images_per_domain(config: BenchConfig) -> int:
    return 10_000 if config.limit is None else min(config.limit, 10_000)


def probe(config: BenchConfig, name: str, source_data) -> tuple[float, float]:
    """(seconds per streamed image, set-up seconds) of method ``name``."""
    from testtime.zoo.cifar import load_cifar_model

    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    began = time.perf_counter()
    method = build_method(name, load_cifar_model(config.model).to(device),
                          config.method_options.get(name, {}), source_data)  # fmt: skip
    setup = time.perf_counter() - began
    if "source_data" in inspect.signature(ADAPT_METHODS.get(name)).parameters:
        setup *= max(1.0, config.source_images / PROBE_SETUP_IMAGES)  # set-up passes over them
    x = torch.rand(min(config.batch_size, 64), 3, 32, 32, device=device)
    method(x)  # first call: configure and source snapshot
    began = time.perf_counter()
    method(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - began) / len(x), setup


def render_plan(config: BenchConfig) -> str:
    """The plan and, per method, the probed time."""
    per_domain = _images_per_domain(config)
    images = per_domain * len(config.domains)
    batches = math.ceil(per_domain / config.batch_size) * len(config.domains)
    lines = [f"plan: {len(config.methods)} method(s) × {len(config.domains)} domains × {per_domain} "
             f"images (setting {config.setting}, severity {config.severity}, batch {config.batch_size}): "
             f"{images} images, {batches} batches per method"]  # fmt: skip
    source = load_source_data(min(config.source_images, PROBE_SETUP_IMAGES), config.seed)
    total = 0.0
    for name in config.methods:
        per_image, setup = probe(config, name, source)
        seconds = setup + per_image * images
        total += seconds
        lines.append(f"  {name}: {1 / per_image:.0f} img/s in the probe, set-up ~{duration(setup)}: "
                     f"~{duration(seconds)}")  # fmt: skip
    lines.append(f"estimated time: ~{duration(total)} (corruption generation not included)")
    return "\n".join(lines) + "\n"
