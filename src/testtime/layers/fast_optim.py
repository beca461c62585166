"""Online optimisers for fast weights (the update rule of test-time training layers).

Each optimiser turns the chunk's gradient ``g`` of the fast-weight loss (learning rates
already folded in, see :mod:`testtime.layers.lact`) into the step subtracted from the fast
weights, carrying its own state between chunks:

- ``sgd``: the gradient itself.
- ``momentum``: ``m <- beta m + g``; the step is ``m`` (heavy ball, no dampening).
- ``muon``: momentum, then the step orthogonalised by a quintic Newton–Schulz iteration
  (Jordan et al. 2024, "Muon"; used for LaCT's online update in Zhang et al. 2025,
  "Test-Time Training Done Right"). Deviation: the orthogonalised step is rescaled by the
  chunk's mean learning rate (``lr_scale``) so the per-token learning rates keep a role;
  LaCT's weight normalisation then fixes the fast weights' norm anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from testtime.registry import Registry

# Quintic coefficients (a, b, c) of Muon's Newton–Schulz iteration: x <- a x + (b A + c A^2) x.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """An approximately orthogonal matrix with ``g``'s singular vectors (batched over
    leading dims): ``U V^T`` of ``g = U S V^T`` to the iteration's accuracy."""
    a, b, c = NS_COEFFS
    tall = g.shape[-2] > g.shape[-1]
    x = g.transpose(-1, -2) if tall else g
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        gram = x @ x.transpose(-1, -2)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.transpose(-1, -2) if tall else x


class FastOptimizer:
    """Maps a gradient to a step; ``state`` is a dict of tensors the caller carries."""

    def init_state(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def step(
        self, grad: torch.Tensor, state: dict[str, torch.Tensor], lr_scale: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


FAST_OPTIMIZERS: Registry[FastOptimizer] = Registry("fast-weight optimiser")


@FAST_OPTIMIZERS.register("sgd")
class SGD(FastOptimizer):
    def step(self, grad, state, lr_scale):
        return grad, state


@dataclass
class Momentum(FastOptimizer):
    beta: float = 0.9

    def init_state(self, weight):
        return {"m": torch.zeros_like(weight)}

    def step(self, grad, state, lr_scale):
        m = self.beta * state["m"] + grad
        return m, {"m": m}


FAST_OPTIMIZERS.register("momentum")(Momentum)


@dataclass
class Muon(Momentum):
    ns_steps: int = 5

    def step(self, grad, state, lr_scale):
        m, state = super().step(grad, state, lr_scale)
        return newton_schulz(m, self.ns_steps) * lr_scale[..., None, None], state


FAST_OPTIMIZERS.register("muon")(Muon)
