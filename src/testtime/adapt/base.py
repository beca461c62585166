"""The adaptation API: :class:`AdaptMethod` wraps a classifier and adapts it online.

``logits = method(x)`` predicts a batch *and* adapts on it; for every method the
prediction is the one from the forward pass that drives the batch's update
(online error, the field's protocol) unless the method's docstring says otherwise.
``reset()`` restores the source model and clears all adaptation state;
``state_dict()``/``load_state_dict()`` carry the whole adaptation state (model,
teacher, anchor, memory, optimizer, Fisher, statistics), so a run resumes exactly.
``forward`` runs under ``torch.enable_grad()``, so a caller's ``torch.no_grad()``
cannot stop the update (``torch.inference_mode()`` still does: its tensors refuse
autograd). ``forwards``/``backwards`` count per-image-batch passes of the network, for cost
accounting; they survive ``reset()`` (they measure cost, not adaptation state).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from testtime.registry import Registry

ADAPT_METHODS: Registry[AdaptMethod] = Registry("adaptation method")

# Source data: an iterable of (x, y) batches, or one (x, y) pair of tensors.
SourceData = Iterable[tuple[Tensor, Tensor]] | tuple[Tensor, Tensor]


class AdaptMethod(nn.Module):
    """Base class: wrap ``model`` (any ``nn.Module`` that returns logits) in place.

    Subclasses set up their modules/optimizer in ``__init__`` and implement
    :meth:`configure` and :meth:`forward_and_adapt`. Plain Python state (EMA
    scalars, memories) goes through :meth:`_get_state` / :meth:`_set_state`;
    tensors may also be registered buffers. The source snapshot that :meth:`reset`
    restores is taken (after :meth:`configure`) on the first call of ``forward``,
    ``reset`` or ``load_state_dict``, so subclasses of subclasses need no hook.
    """

    optimizer: torch.optim.Optimizer | None

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.optimizer = None
        self.forwards = 0
        self.backwards = 0
        self._initial: dict[str, Any] | None = None

    # -- subclass interface -------------------------------------------------------
    def configure(self) -> None:
        """Put the wrapped modules in the train/eval modes and ``requires_grad``
        flags the method needs. Re-applied by :meth:`train`/:meth:`eval`, so a
        caller's ``method.eval()`` cannot silently switch BN back to source stats."""

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:
        """Non-tensor-module adaptation state (memories, EMAs); override with :meth:`_set_state`."""
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        del state

    def _ensure_ready(self) -> dict[str, Any]:
        """Apply :meth:`configure` and snapshot the source state, once."""
        if self._initial is None:
            self.configure()
            self._initial = copy.deepcopy(self.state_dict())
        return self._initial

    # -- public API ---------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if self._initial is None:
            self._ensure_ready()
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
            raise ValueError("expected a non-empty batch tensor of shape (B, ...)")
        # Adaptation needs autograd even when the caller evaluates under
        # ``torch.no_grad()`` (as the reference codebase's ``torch.enable_grad``).
        with torch.enable_grad():
            return self.forward_and_adapt(x)

    def reset(self) -> None:
        """Restore the source model and clear all adaptation state (counters are kept)."""
        counts = self.forwards, self.backwards
        self.load_state_dict(self._ensure_ready())
        self.forwards, self.backwards = counts

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._ensure_ready()  # the snapshot must be the source, not the loaded state
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def train(self, mode: bool = True) -> AdaptMethod:
        super().train(mode)
        self.configure()
        return self

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "forwards": self.forwards,
            "backwards": self.backwards,
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "method": self._get_state(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        # Copies, so that later in-place updates never alias the caller's (or the
        # reset snapshot's) tensors.
        state = copy.deepcopy(state)
        self.forwards = state["forwards"]
        self.backwards = state["backwards"]
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self._set_state(state["method"])


def get_method(name: str, model: nn.Module, **options: Any) -> AdaptMethod:
    """Build the registered adaptation method ``name`` around ``model``."""
    return ADAPT_METHODS.create(name, model, **options)


def iter_source_batches(
    source_data: SourceData | None, batch_size: int = 200, *, method: str = "this method"
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, y)`` batches from an iterable of batches or a tensor pair."""
    if source_data is None:
        raise ValueError(f"{method} needs source_data: (x, y) batches or an (x, y) tensor pair")
    if (
        isinstance(source_data, tuple | list)
        and len(source_data) == 2
        and all(isinstance(t, Tensor) for t in source_data)
    ):
        x, y = source_data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"source_data: {x.shape[0]} inputs but {y.shape[0]} labels")
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]
        return
    for batch in source_data:
        if not (isinstance(batch, tuple | list) and len(batch) >= 2):
            raise ValueError("source_data must yield (x, y) batches")
        yield batch[0], batch[1]
