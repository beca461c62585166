"""PSMT: parameter-selective mean teacher for continual TTA (Tian & Lyu, AAAI 2024)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, SourceData
from testtime.adapt.cotta import CoTTA
from testtime.adapt.fisher import estimate_fisher


@ADAPT_METHODS.register("psmt")
class PSMT(CoTTA):
    """Mean teacher with Fisher-selective distillation and a Fisher-selective EMA.

    Implemented ([verify]: the released code differs from the paper):
    - student loss = CE(teacher → student) (CoTTA's teacher target, augmentation-
      averaged when the anchor is unsure) + ``reg_weight``·Σ F̃ (θ_t − θ_{t−1})², where
      θ_{t−1} are the weights before the previous step and F̃ the Fisher normalised to
      mean 1 (so ``reg_weight`` is scale-free); it damps changes of important weights;
    - F: from ``source_data`` (images labelled by the model's argmax) when given, else
      zero; updated online as an EMA (``fisher_momentum`` 0.9) of the squared gradients;
    - teacher EMA (``ema`` 0.999) only on entries whose Fisher is above the
      ``quantile`` (3%) quantile; the others keep their teacher value;
    - no stochastic restore (``restore_p`` 0).
    The prediction returned is the teacher's, as in CoTTA.
    """

    def __init__(
        self,
        model: nn.Module,
        source_data: SourceData | None = None,
        *,
        reg_weight: float = 1.0,
        quantile: float = 0.03,
        fisher_momentum: float = 0.9,
        **cotta_options: Any,
    ) -> None:
        cotta_options.setdefault("restore_p", 0.0)
        super().__init__(model, **cotta_options)
        self.reg_weight, self.quantile, self.fisher_momentum = reg_weight, quantile, fisher_momentum
        if source_data is not None:
            self.fisher = estimate_fisher(model, self.params, source_data, method="PSMT")
        else:
            self.fisher = [torch.zeros_like(p) for p in self.params]
        self.previous: list[Tensor] | None = None

    def _get_state(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "previous": self.previous}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.fisher, self.previous = state["fisher"], state["previous"]

    def _normalised_fisher(self) -> list[Tensor]:
        total = sum(f.sum() for f in self.fisher)
        count = sum(f.numel() for f in self.fisher)
        return torch._foreach_div(self.fisher, total / count + 1e-20)

    def regulariser(self) -> Tensor | float:
        if self.previous is None or self.reg_weight == 0:
            return 0.0
        diffs = torch._foreach_sub(self.params, self.previous)
        weights = self._normalised_fisher()
        return self.reg_weight * sum((w * d * d).sum() for w, d in zip(weights, diffs, strict=True))

    @torch.no_grad()
    def before_step(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        sq = torch._foreach_mul(grads, grads)
        torch._foreach_lerp_(self.fisher, sq, 1.0 - self.fisher_momentum)
        self.previous = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update_teacher(self) -> None:
        flat = torch.cat([f.flatten() for f in self.fisher])
        k = max(1, int(self.quantile * flat.numel()))
        threshold = flat.kthvalue(k).values
        for t, s, f in zip(self.teacher.parameters(), self.params, self.fisher, strict=True):
            t.copy_(torch.where(f > threshold, torch.lerp(t, s, 1.0 - self.ema), t))
