"""One method on one stream: online error, cost counters and peak memory, resumable
inside the stream (:mod:`testtime.adapt.checkpoint`)."""

from __future__ import annotations

import inspect
import math
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from testtime.adapt import ADAPT_METHODS, get_method
from testtime.adapt.checkpoint import DomainCheckpoint
from testtime.data.streams import Stream


class PeakMemory:
    """Peak memory of one method run, in MB.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the rise of the process's peak
    resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) above its
    level at the start, i.e. what the method added on top of the data already loaded.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @staticmethod
    def _status(key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        self.base = self._status("VmRSS") or 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base
            return
        hwm = self._status("VmHWM")
        if hwm is None:  # not Linux: lifetime peak (kB on Linux, bytes on macOS)
            scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        self.peak = max(0.0, hwm - self.base)


def build_method(
    name: str, model: nn.Module, options: dict[str, Any], source_data: Any
) -> nn.Module:
    """``get_method`` with ``source_data`` passed only to methods that declare it."""
    opts = dict(options)
    params = inspect.signature(ADAPT_METHODS.get(name)).parameters
    if "source_data" in params and "source_data" not in opts:
        opts["source_data"] = source_data
    return get_method(name, model, **opts)


def run_method(
    method: nn.Module,
    stream: Stream,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    checkpoint: DomainCheckpoint | None = None,
    on_save: Callable[[dict[str, Any]], None] | None = None,
    every: int | None = None,
) -> dict[str, Any]:
    """Online error of ``method`` on ``stream`` and the cost of the adaptation loop.

    With ``checkpoint``: saved at every new domain and, in streams without domain
    boundaries (``mixed``), every ``every`` images (default: one domain's worth), then
    resumed from; ``on_save`` gets :func:`partial_summary` of each saved state."""
    errors: dict[str, list[int]] = {d: [0, 0] for d in stream.domains}  # wrong, seen
    batches = images = 0
    loop_s = 0.0
    resumed = checkpoint.load() if checkpoint else None
    if resumed is not None:
        DomainCheckpoint.restore(method, resumed)
        errors, batches, images, loop_s = (resumed[k] for k in ("errors", "batches", "images", "loop_s"))
    skip, saved_at = batches, images
    every = every or max(1, stream.n_images // max(1, len(stream.domains)))
    with PeakMemory(device) as mem:
        for i, batch in enumerate(stream):
            if i < skip:  # seen before the resume
                if progress:
                    progress(len(batch.y))
                continue
            if checkpoint and i > skip and (batch.new_domain or images - saved_at >= every):
                state = {"errors": errors, "batches": batches, "images": images, "loop_s": loop_s}
                checkpoint.save(method, state)
                saved_at = images
                if on_save:
                    on_save(partial_summary(state, stream.n_images))
            if batch.reset:
                method.reset()
            # Streams give NHWC-backed (channels-last strided) tensors; torch 2.13's CPU
            # GroupNorm backward segfaults on such an input at batch size 1.
            x, y = batch.x.to(device).contiguous(), batch.y.to(device)
            t0 = time.perf_counter()
            logits = method(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            loop_s += time.perf_counter() - t0
            wrong = (logits.argmax(1) != y).cpu().numpy()
            who = np.asarray(batch.sample_domains, dtype=object)
            for d in dict.fromkeys(batch.sample_domains):
                m = who == d
                errors[d][0] += int(wrong[m].sum())
                errors[d][1] += int(m.sum())
            batches += 1
            images += len(y)
            if progress:
                progress(len(y))
    per_domain = {d: 100.0 * w / n for d, (w, n) in errors.items() if n}
    return {
        "mean_error": float(np.mean(list(per_domain.values()))),
        "per_domain_error": per_domain,
        "images": images,
        "batches": batches,
        "images_per_s": images / loop_s if loop_s > 0 else math.inf,
        "forwards": method.forwards,
        "backwards": method.backwards,
        "forwards_per_batch": method.forwards / max(batches, 1),
        "backwards_per_batch": method.backwards / max(batches, 1),
        "peak_mem_mb": round(mem.peak, 1),
        "loop_s": round(loop_s, 2),
        **({"resumed_at_batch": skip} if skip else {}),
    }


def partial_summary(state: dict[str, Any], total_images: int) -> dict[str, Any]:
    """What a saved, unfinished run has so far: per-domain online error of the domains
    it has seen (the last one possibly incomplete in ``mixed``), images and speed."""
    seen = {d: (w, n) for d, (w, n) in state["errors"].items() if n}
    return {
        "per_domain_error": {d: 100.0 * w / n for d, (w, n) in seen.items()},
        "images_seen": {d: n for d, (_, n) in seen.items()},
        "images": state["images"],
        "total_images": total_images,
        "batches": state["batches"],
        "images_per_s": state["images"] / state["loop_s"] if state["loop_s"] > 0 else math.inf,
        "loop_s": round(state["loop_s"], 2),
    }
