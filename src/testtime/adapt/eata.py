"""EATA and ETA: efficient anti-forgetting test-time adaptation (Niu et al., ICML 2022)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod, SourceData
from testtime.adapt.common import make_optimizer, softmax_entropy
from testtime.adapt.fisher import estimate_fisher
from testtime.adapt.params import collect_norm_params, configure_norm


@ADAPT_METHODS.register("eata")
class EATA(AdaptMethod):
    """Entropy minimisation on reliable, non-redundant samples with a Fisher
    anti-forgetting regulariser; norm affine parameters only (BN batch statistics).

    Per batch: keep samples with entropy E < ``e_margin`` (default 0.4·ln C, C read
    from the first batch); of those keep the ones whose probabilities have
    |cos(m, p)| < ``d_margin`` to ``m``, an EMA (0.9) of the mean probabilities of
    previously kept samples; loss = mean exp(E0 − E)·E + β Σ F (θ − θ⁰)². The step is
    skipped when no sample survives. ``source_data`` (iterable of (x, y) batches or a
    tensor pair; labels unused) gives the Fisher F from ``fisher_size`` clean images
    labelled by the model's argmax; required when ``fisher_alpha`` (β) > 0.
    CIFAR defaults: Adam 1e-3, ε 0.4, β 1. ImageNet: SGD 2.5e-4, ε 0.05, β 2000.
    The prediction returned is the one of the forward pass that drives the update.
    """

    def __init__(
        self,
        model: nn.Module,
        source_data: SourceData | None = None,
        *,
        fisher_alpha: float = 1.0,
        fisher_size: int = 2000,
        e_margin: float | None = None,
        d_margin: float = 0.4,
        lr: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(model)
        if fisher_alpha < 0:
            raise ValueError(f"fisher_alpha must be >= 0, got {fisher_alpha}")
        self.fisher_alpha = fisher_alpha
        self.e_margin = e_margin
        self.d_margin = d_margin
        self.configure()
        self.params = collect_norm_params(model)[0]
        self.optimizer = make_optimizer(self.params, optimizer, lr, momentum=momentum)
        self.fisher: list[Tensor] = []
        self.anchor: list[Tensor] = []
        if fisher_alpha > 0:
            self.fisher = estimate_fisher(
                model, self.params, source_data, max_samples=fisher_size, method="EATA"
            )
            self.anchor = [p.detach().clone() for p in self.params]
        self.mean_probs: Tensor | None = None  # EMA of kept samples' probabilities

    def configure(self) -> None:
        configure_norm(self.model, "affine")

    def _get_state(self) -> dict[str, Any]:
        return {"mean_probs": self.mean_probs, "fisher": self.fisher, "anchor": self.anchor}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.mean_probs = state["mean_probs"]
        self.fisher, self.anchor = state["fisher"], state["anchor"]

    def margin(self, num_classes: int) -> float:
        return self.e_margin if self.e_margin is not None else 0.4 * math.log(num_classes)

    def select(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Indices of the reliable and non-redundant samples, and their entropies;
        updates the EMA of mean probabilities with the kept samples."""
        ent = softmax_entropy(logits)
        keep = ent < self.margin(logits.shape[1])
        probs = logits.detach().softmax(1)
        if self.mean_probs is not None:
            cos = F.cosine_similarity(self.mean_probs.unsqueeze(0), probs, dim=1)
            keep &= cos.abs() < self.d_margin
        idx = keep.nonzero().squeeze(1)
        if idx.numel() > 0:
            kept_mean = probs[idx].mean(0)
            self.mean_probs = (
                kept_mean
                if self.mean_probs is None
                else torch.lerp(self.mean_probs, kept_mean, 0.1)
            )
        return idx, ent[idx]

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        self.forwards += 1
        idx, ent = self.select(logits)
        if idx.numel() > 0:
            # weight 1/exp(E − E0): more confident samples count more (no gradient)
            loss = (ent * torch.exp(self.margin(logits.shape[1]) - ent.detach())).mean()
            if self.fisher:
                diffs = torch._foreach_sub(self.params, self.anchor)
                loss = loss + self.fisher_alpha * sum(
                    (f * d * d).sum() for f, d in zip(self.fisher, diffs, strict=True)
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.backwards += 1
        return logits.detach()


@ADAPT_METHODS.register("eta")
class ETA(EATA):
    """ETA: EATA without the Fisher regulariser (β = 0); needs no source data."""

    def __init__(self, model: nn.Module, **options: Any) -> None:
        if options.get("fisher_alpha", 0.0) != 0.0 or options.get("source_data") is not None:
            raise ValueError("ETA uses no Fisher regulariser; use 'eata' for fisher_alpha > 0")
        options["fisher_alpha"] = 0.0
        super().__init__(model, **options)
