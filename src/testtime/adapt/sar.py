"""SAR: sharpness-aware and reliable entropy minimisation (Niu et al., ICLR 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.common import make_optimizer, softmax_entropy
from testtime.adapt.params import collect_norm_params, configure_norm


def default_exclude(model: nn.Module) -> list[str]:
    """SAR's frozen top layers: ``layer4`` of a ResNet, the last 3 ``blocks`` and the
    final ``norm`` of a ViT (timm naming); nothing for other architectures."""
    children = dict(model.named_children())
    if "layer4" in children:
        return ["layer4"]
    blocks = children.get("blocks")
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks) >= 3:
        return [f"blocks.{i}" for i in range(len(blocks) - 3, len(blocks))] + ["norm"]
    return []


@ADAPT_METHODS.register("sar")
class SAR(AdaptMethod):
    """Entropy minimisation on reliable samples (E < ``e_margin`` = 0.4·ln C) with
    SAM (ρ = 0.05) around SGD (momentum 0.9) on the affine parameters of BN/GN/LN
    layers (except ``exclude``: name prefixes, default :func:`default_exclude`).

    Two forward/backward passes per batch: the first finds the ascent direction
    θ + ρ g/‖g‖, the second (same batch, samples filtered again) takes the step at
    the restored θ. If the EMA (0.9) of the second-pass loss falls below
    ``reset_constant`` (0.2) the model and optimizer are reset (model recovery).
    ``lr`` 1e-3 is the CIFAR setting of the reference codebase
    (mariodoebler/test-time-adaptation, cfgs/cifar10_c/sar.yaml: SGD 1e-3, momentum
    0.9); ``lr=None`` uses the paper's ImageNet rule: 2.5e-4, or 2.5e-4·2·B/64 for
    batches B < 32 (per batch). Works with batch size 1 for GN/LN models.
    The prediction returned is the one of the first forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float | None = 1e-3,
        rho: float = 0.05,
        momentum: float = 0.9,
        e_margin: float | None = None,
        reset_constant: float = 0.2,
        exclude: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model)
        if rho <= 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        self.rho, self.e_margin, self.reset_constant = rho, e_margin, reset_constant
        self.params = collect_norm_params(
            model, default_exclude(model) if exclude is None else exclude
        )[0]
        self.optimizer = make_optimizer(self.params, "sgd", lr or 2.5e-4, momentum=momentum)
        self.auto_lr = lr is None
        self.loss_ema: float | None = None
        self.resets = 0

    def configure(self) -> None:
        configure_norm(self.model, "bn")
        for p in self.params:
            p.requires_grad_(True)

    def _get_state(self) -> dict[str, Any]:
        return {"loss_ema": self.loss_ema}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.loss_ema = state["loss_ema"]

    def _filtered_entropy(
        self, logits: Tensor, keep: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        ent = softmax_entropy(logits)
        if keep is not None:
            ent = ent[keep]
        margin = self.e_margin if self.e_margin is not None else 0.4 * math.log(logits.shape[1])
        reliable = ent < margin
        return ent[reliable], reliable

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        if self.auto_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = 2.5e-4 / 64 * x.shape[0] * 2 if x.shape[0] < 32 else 2.5e-4
        logits = self.model(x)
        self.forwards += 1
        ent, keep = self._filtered_entropy(logits)
        if ent.numel() == 0:
            return logits.detach()
        # SAM, first step: climb to the worst point within radius rho.
        self.optimizer.zero_grad(set_to_none=True)
        ent.mean().backward()
        self.backwards += 1
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        eps = torch._foreach_mul(grads, self.rho / (norm + 1e-12))
        with torch.no_grad():
            torch._foreach_add_(self.params, eps)
        self.optimizer.zero_grad(set_to_none=True)
        # Second step: gradient at the perturbed point, applied at the original one.
        ent2, _ = self._filtered_entropy(self.model(x), keep)
        self.forwards += 1
        if ent2.numel() > 0:
            loss2 = ent2.mean()
            loss2.backward()
            self.backwards += 1
            value = loss2.item()
            if math.isfinite(value):
                self.loss_ema = (
                    value if self.loss_ema is None else 0.9 * self.loss_ema + 0.1 * value
                )
        with torch.no_grad():
            torch._foreach_sub_(self.params, eps)
        if ent2.numel() > 0:
            self.optimizer.step()
        if self.loss_ema is not None and self.loss_ema < self.reset_constant:
            self.reset()  # also clears loss_ema
            self.resets += 1
        return logits.detach()
