"""PSMT: parameter-selective mean teacher (Tian & Lyu, "Parameter-Selective Continual
Test-Time Adaptation", ACCV 2024), as its released code (JiaxuTian/PSMT) runs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, SourceData
from testtime.adapt.common import restore_low_fisher
from testtime.adapt.cotta import CoTTA
from testtime.adapt.fisher import estimate_fisher


def symmetric_cross_entropy(student: Tensor, teacher: Tensor, alpha: float = 0.5) -> Tensor:
    """Per-sample (1 − α)·CE(teacher → student) + α·CE(student → teacher); the
    teacher gets no gradient, the student gets it through both terms."""
    teacher = teacher.detach()
    forward = -(teacher.softmax(1) * student.log_softmax(1)).sum(1)
    backward = -(student.softmax(1) * teacher.log_softmax(1)).sum(1)
    return (1 - alpha) * forward + alpha * backward


@ADAPT_METHODS.register("psmt")
class PSMT(CoTTA):
    """Mean teacher with an EWC anchor, Fisher-selective restore and teacher update.

    Per batch, as the released code computes it:
    - student logits s = f_θ(x) (all parameters trained, BN batch statistics, Adam
      1e-3); teacher target t = teacher(x) (EMA 0.999);
    - loss = mean SCE(s, t) (symmetric CE, α 0.5) + ``ewc_weight`` (500)·Σ F (θ − θ₀)²,
      F the diagonal Fisher of the source model on ``source_data`` (argmax labels; the
      code uses 10,000 source images, here ``fisher_size``, default 2,000); no EWC term
      without ``source_data``;
    - after the Adam step: teacher ← EMA(teacher, student); the entries whose squared
      gradient of this step lies below the ``quantile`` (3%, interpolated) are restored
      to source; then teacher ← mask·student + (1 − mask)·EMA(teacher, student), i.e.
      restored entries copy the student (= source) and the others take a *second* EMA
      step;
    - the prediction is t + s (the code returns the sum of the logits).
    Released-code quirks kept by default (``augment_views=False``): its augmented student
    branch is overwritten by the plain one and its 32-view teacher average feeds
    un-augmented images, so neither augments. ``augment_views=True`` runs the paper's intent
    instead: the student loss is ½ SCE(s, t) + ½ SCE(f_θ(aug x), t) and the target is
    CoTTA's (32 augmented views when the anchor's mean confidence is below 0.92).
    """

    def __init__(
        self,
        model: nn.Module,
        source_data: SourceData | None = None,
        *,
        ewc_weight: float = 500.0,
        fisher_size: int = 2000,
        quantile: float = 0.03,
        sce_alpha: float = 0.5,
        augment_views: bool = False,
        **cotta_options: Any,
    ) -> None:
        cotta_options.setdefault("restore_p", 0.0)
        super().__init__(model, **cotta_options)
        self.ewc_weight, self.quantile, self.sce_alpha = ewc_weight, quantile, sce_alpha
        self.augment_views = augment_views
        if source_data is not None and ewc_weight > 0:
            self.fisher = estimate_fisher(
                model, self.params, source_data, max_samples=fisher_size, method="PSMT"
            )
        else:
            self.fisher = []

    def _get_state(self) -> dict[str, Any]:
        return {"fisher": self.fisher}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.fisher = state["fisher"]

    def regulariser(self) -> Tensor | float:
        if not self.fisher:
            return 0.0
        diffs = torch._foreach_sub(self.params, self.source_params)
        return self.ewc_weight * sum(
            (f * d * d).sum() for f, d in zip(self.fisher, diffs, strict=True)
        )

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        student = self.model(x)
        self.forwards += 1
        if self.augment_views:
            target = self.teacher_target(x)
            student_aug = self.model(self.augment(x))
            self.forwards += 1
            sce = 0.5 * symmetric_cross_entropy(student, target, self.sce_alpha)
            sce = sce + 0.5 * symmetric_cross_entropy(student_aug, target, self.sce_alpha)
        else:
            with torch.no_grad():
                target = self.teacher(x)
            self.forwards += 1
            sce = symmetric_cross_entropy(student, target, self.sce_alpha)
        loss = sce.mean() + self.regulariser()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 1
        self.optimizer.step()
        self.update_teacher()
        masks = restore_low_fisher(self.params, self.source_params, self.quantile)
        with torch.no_grad():
            for t, s, m in zip(self.teacher.parameters(), self.params, masks, strict=True):
                t.copy_(torch.where(m, s, torch.lerp(t, s, 1.0 - self.ema)))
        return (target + student).detach()
