"""A label-free collapse guard for any :class:`~testtime.adapt.base.AdaptMethod`.

Entropy-minimising adaptation can collapse: on class-correlated or label-shifted streams
and with small batches, Tent-like updates drive the model to predict one (or a few)
classes with near-zero entropy (Niu et al., "Towards Stable Test-Time Adaptation in
Dynamic Wild World" (SAR), ICLR 2023; Press et al., "RDumb", NeurIPS 2023). The guard
watches only the predictions the method returns:

- *marginal concentration*: an EMA, with a time constant counted in images, of the hard
  prediction histogram; collapse when one class holds more than ``max_share`` of it.
  The EMA starts at the uniform distribution, so the first batches cannot trigger it,
  and its horizon (``horizon`` images, default 5,000) spans several classes even on a
  label-sorted CIFAR-10 stream.
- *entropy collapse*: an EMA of the mean normalised prediction entropy; collapse when it
  falls below ``entropy_ratio`` times its level over the first ``warmup`` batches.

While healthy it snapshots the wrapped method's complete state every ``snapshot_every``
batches, keeping two snapshots so that the one restored has stayed healthy for at least
``snapshot_every`` batches after it was taken (collapse starts before it is detected).
On collapse it rolls back to that snapshot (optionally clearing the optimizer's moments);
a second collapse within ``patience`` batches of a rollback resets the method to the
source model instead. A collapse that comes back from the source model itself is caused
by the step size, so after the k-th such reset the method runs at ``lr_backoff ** k``
times its own learning rate (1 keeps it). The batch on which collapse is detected keeps
the prediction the method already made; the rollback takes effect from the next batch.
Off by default in the benchmark (``--guard``).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn

from testtime.adapt.base import AdaptMethod


class CollapseGuard(nn.Module):
    """Wrap ``method``; ``guard(x)`` returns the method's logits and may roll it back.

    The attributes ``rollbacks`` and ``resets`` count interventions; ``events`` lists
    ``(batch index, action, reason)``. ``forwards``/``backwards`` are the wrapped
    method's counters (the guard itself runs no network pass).
    """

    def __init__(
        self,
        method: AdaptMethod,
        *,
        max_share: float = 0.6,
        entropy_ratio: float = 0.1,
        horizon: int = 5000,
        entropy_momentum: float = 0.9,
        warmup: int = 5,
        snapshot_every: int = 10,
        patience: int = 20,
        reset_optimizer: bool = True,
        lr_backoff: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0.0 < max_share <= 1.0:
            raise ValueError(f"max_share must be in (0, 1], got {max_share}")
        if not 0.0 <= entropy_ratio < 1.0:
            raise ValueError(f"entropy_ratio must be in [0, 1), got {entropy_ratio}")
        if not 0.0 < lr_backoff <= 1.0:
            raise ValueError(f"lr_backoff must be in (0, 1], got {lr_backoff}")
        if not 0.0 <= entropy_momentum < 1.0:
            raise ValueError(f"entropy_momentum must be in [0, 1), got {entropy_momentum}")
        for name, value in (
            ("horizon", horizon),
            ("warmup", warmup),
            ("snapshot_every", snapshot_every),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.method = method
        self.max_share = max_share
        self.entropy_ratio = entropy_ratio
        self.horizon = horizon
        self.entropy_momentum = entropy_momentum
        self.warmup = warmup
        self.snapshot_every = snapshot_every
        self.patience = patience
        self.reset_optimizer = reset_optimizer
        self.lr_backoff = lr_backoff
        self._clear_monitor()
        self.rollbacks = 0
        self.resets = 0
        self.events: list[tuple[int, str, str]] = []

    # -- delegated interface ---------------------------------------------------------
    @property
    def forwards(self) -> int:
        return self.method.forwards

    @property
    def backwards(self) -> int:
        return self.method.backwards

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.method.optimizer

    def reset(self) -> None:
        """Reset the wrapped method to the source model and forget all monitoring state."""
        self.method.reset()
        self._clear_monitor()

    # -- monitoring ------------------------------------------------------------------
    def _clear_monitor(self) -> None:
        self.step = 0
        self.marginal: Tensor | None = None  # EMA of the hard-prediction histogram
        self.entropy: float | None = None  # EMA of the mean normalised entropy
        self.entropy_ref: float | None = None
        self._ref_sum = 0.0
        self._candidate: dict[str, Any] | None = None
        self._trusted: dict[str, Any] | None = None
        self._last_rollback: int | None = None

    def _update(self, logits: Tensor) -> None:
        probs = logits.detach().float().softmax(1)
        n, c = probs.shape
        ent = float(-(probs * probs.clamp_min(1e-12).log()).sum(1).mean()) / math.log(c)
        hist = torch.bincount(probs.argmax(1), minlength=c).float() / n
        if self.marginal is None:
            self.marginal = torch.full((c,), 1.0 / c)
        # Time constant in images, so batch size 1 and batch size 200 see the same horizon.
        keep = math.exp(-n / self.horizon)
        self.marginal.mul_(keep).add_(hist.cpu(), alpha=1.0 - keep)
        m = self.entropy_momentum
        self.entropy = ent if self.entropy is None else m * self.entropy + (1 - m) * ent
        self.step += 1
        if self.step <= self.warmup:
            self._ref_sum += ent
            if self.step == self.warmup:
                self.entropy_ref = self._ref_sum / self.warmup

    def diagnose(self) -> str | None:
        """The reason the current state looks collapsed, or ``None`` when healthy."""
        if self.marginal is not None:
            share = float(self.marginal.max())
            if share > self.max_share:
                cls = int(self.marginal.argmax())
                return f"class {cls} holds {share:.0%} of recent predictions"
        if self.entropy_ref is not None and self.entropy is not None:
            if self.entropy < self.entropy_ratio * self.entropy_ref:
                return f"entropy {self.entropy:.3f} < {self.entropy_ratio} x {self.entropy_ref:.3f}"
        return None

    # -- snapshots -------------------------------------------------------------------
    def _monitor_state(self) -> dict[str, Any]:
        return {
            "marginal": None if self.marginal is None else self.marginal.clone(),
            "entropy": self.entropy,
        }

    def _snapshot(self) -> dict[str, Any]:
        return {"method": copy.deepcopy(self.method.state_dict()), "monitor": self._monitor_state()}

    def _restore(self, snap: dict[str, Any]) -> None:
        counts = self.method.forwards, self.method.backwards
        self.method.load_state_dict(snap["method"])
        self.method.forwards, self.method.backwards = counts  # cost counters never roll back
        if self.reset_optimizer and self.method.optimizer is not None:
            self.method.optimizer.state = defaultdict(dict)
        marginal = snap["monitor"]["marginal"]
        self.marginal = None if marginal is None else marginal.clone()
        self.entropy = snap["monitor"]["entropy"]

    def forward(self, x: Tensor) -> Tensor:
        logits = self.method(x)
        self._update(logits)
        reason = self.diagnose()
        if reason is None:
            if self.step % self.snapshot_every == 0:
                self._trusted, self._candidate = self._candidate, self._snapshot()
            return logits
        recent = (
            self._last_rollback is not None and self.step - self._last_rollback <= self.patience
        )
        if self._trusted is None or recent:
            # Nothing healthy to return to (or it collapsed again right away): back to source.
            self.method.reset()  # keeps the cost counters
            step, ref = self.step, (self.entropy_ref, self._ref_sum)
            self._clear_monitor()
            self.step, (self.entropy_ref, self._ref_sum) = step, ref
            self.resets += 1
            factor = self._back_off()
            self.events.append((step, "reset", reason + (f"; lr x{factor:g}" if factor < 1 else "")))
        else:
            self._restore(self._trusted)
            self._candidate = None  # taken after the trusted one: possibly already drifting
            self._last_rollback = self.step
            self.rollbacks += 1
            self.events.append((self.step, "rollback", reason))
        return logits

    def _back_off(self) -> float:
        """Scale the (just reset) optimizer's learning rates by ``lr_backoff ** resets``."""
        if self.method.optimizer is None or self.lr_backoff == 1.0:
            return 1.0
        factor = self.lr_backoff**self.resets
        for group in self.method.optimizer.param_groups:
            group["lr"] *= factor
        return factor

    # -- whole state -------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "step": self.step, "marginal": self.marginal, "entropy": self.entropy,
            "entropy_ref": self.entropy_ref, "ref_sum": self._ref_sum,
            "candidate": self._candidate, "trusted": self._trusted,
            "last_rollback": self._last_rollback, "rollbacks": self.rollbacks,
            "resets": self.resets, "events": list(self.events),
        }  # fmt: skip

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # Through the method's own load_state_dict (a nested load would bypass it), so that
        # the method keeps the source snapshot its reset() returns to.
        inner = {k[len("method.") :]: v for k, v in state_dict.items() if k.startswith("method.")}
        if "_extra_state" not in state_dict:
            raise KeyError("not a CollapseGuard state_dict: no '_extra_state'")
        result = self.method.load_state_dict(inner, strict=strict, assign=assign)
        self.set_extra_state(state_dict["_extra_state"])
        return result

    def set_extra_state(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.step, self.marginal, self.entropy = state["step"], state["marginal"], state["entropy"]
        self.entropy_ref, self._ref_sum = state["entropy_ref"], state["ref_sum"]
        self._candidate, self._trusted = state["candidate"], state["trusted"]
        self._last_rollback = state["last_rollback"]
        self.rollbacks, self.resets = state["rollbacks"], state["resets"]
        self.events = [tuple(e) for e in state["events"]]
