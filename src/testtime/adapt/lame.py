"""LAME: Laplacian-adjusted maximum-likelihood estimation (Boudiaf et al., CVPR 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.params import FeatureHook, configure_norm

AFFINITIES = ("knn", "rbf", "linear")


def affinity(feats: Tensor, kind: str = "rbf", k: int = 5) -> Tensor:
    """Affinity W between L2-normalised features, as LAME's reference code
    (fiveai/LAME, and mariodoebler/test-time-adaptation):

    - ``knn``: 1 for the k nearest neighbours, the point itself excluded;
    - ``rbf``: exp(−d²/2σ²), σ the mean over points of the k-th smallest distance
      *counting the point itself* (its distance 0 is the first), i.e. of the distance
      to the (k−1)-th neighbour; the diagonal is kept (W_ii = 1);
    - ``linear``: cosine similarity zᵢᵀzⱼ (not clipped, as the reference).
    """
    z = F.normalize(feats, dim=1)
    n = z.shape[0]
    if kind == "linear":
        return z @ z.T
    dist = torch.cdist(z, z)
    if kind == "knn":
        k = min(k, n - 1)
        if k == 0:
            return torch.zeros(n, n, device=z.device, dtype=z.dtype)
        nearest = dist.topk(k + 1, dim=1, largest=False)
        return torch.zeros_like(dist).scatter_(1, nearest.indices[:, 1:], 1.0)
    if kind == "rbf":
        kth = dist.topk(min(k, n), dim=1, largest=False).values[:, -1]
        sigma = kth.mean().clamp_min(1e-8)
        return torch.exp(-(dist**2) / (2 * sigma**2))
    raise ValueError(f"unknown affinity {kind!r}; valid: {', '.join(AFFINITIES)}")


def laplacian_optimization(
    probs: Tensor, kernel: Tensor, weight: float = 1.0, max_steps: int = 100, tol: float = 1e-8
) -> Tensor:
    """Solve min_Y Σ KL(y_i ‖ p_i) − λ Σ w_ij y_iᵀ y_j by the fixed point
    Y ← softmax(log p + λ W Y), stopping when the energy's relative change ≤ ``tol``."""
    log_p = probs.clamp_min(1e-20).log()
    y = probs
    energy_prev = None
    for _ in range(max_steps):
        pairwise = weight * (kernel @ y)
        y = (log_p + pairwise).softmax(1)
        energy = (y * (y.clamp_min(1e-20).log() - log_p - pairwise)).sum()
        if energy_prev is not None and (energy - energy_prev).abs() <= tol * energy_prev.abs():
            break
        energy_prev = energy
    return y


@ADAPT_METHODS.register("lame")
class LAME(AdaptMethod):
    """Output-only adaptation: the frozen model's probabilities of a batch are refined
    by Laplacian regularisation over an RBF (default, k 5: the reference codebase's
    setting) / kNN / linear affinity (:func:`affinity`) of the
    L2-normalised penultimate features (the input of the last ``nn.Linear``, or of
    ``feature_layer``). No parameter changes. Returns log of the refined
    probabilities (softmax of the output = the LAME assignment).
    """

    def __init__(
        self,
        model: nn.Module,
        affinity: str = "rbf",
        knn: int = 5,
        weight: float = 1.0,
        max_steps: int = 100,
        feature_layer: str | None = None,
    ) -> None:
        super().__init__(model)
        if affinity not in AFFINITIES:
            raise ValueError(f"unknown affinity {affinity!r}; valid: {', '.join(AFFINITIES)}")
        self.kind, self.knn, self.weight, self.max_steps = affinity, knn, weight, max_steps
        self.hook = FeatureHook(model, feature_layer)

    def configure(self) -> None:
        configure_norm(self.model, "frozen")

    @torch.no_grad()
    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        self.forwards += 1
        kernel = affinity(self.hook.pop().float(), self.kind, self.knn)
        y = laplacian_optimization(logits.float().softmax(1), kernel, self.weight, self.max_steps)
        return y.clamp_min(1e-20).log().to(logits.dtype)
