"""Resuming one method's benchmark run inside its stream, at domain boundaries.

At the start of every new domain the benchmark saves what the run has so far: the
method's whole adaptation state (``state_dict``: model, teacher, anchor, memory,
optimizer, counters), the online-error tallies, the loop time and torch's RNG state
(CoTTA's augmentations and restores draw from it). A killed run reloads it, skips the
batches already seen and continues, so its numbers equal an uninterrupted run's.
Deviation: ``peak_mem_mb`` of a resumed run covers only the part after the resume.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from testtime.store.atomic import atomic_write_bytes


class DomainCheckpoint:
    """``methods/<key>.partial.pt``: the progress of one unfinished method."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:  # damaged
            raise ValueError(f"{self.path}: unreadable checkpoint ({err}); delete it to restart "
                             "this method from the beginning") from None  # fmt: skip

    def save(self, method: nn.Module, progress: dict[str, Any]) -> None:
        state = {
            **progress,
            "method": method.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    @staticmethod
    def restore(method: nn.Module, state: dict[str, Any]) -> None:
        """Put ``method`` and torch's RNG back where the checkpoint was taken."""
        method.load_state_dict(state["method"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
