"""PETAL: probabilistic lifelong test-time adaptation (Brahma & Rai, CVPR 2023)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, SourceData, iter_source_batches
from testtime.adapt.common import frozen_copy
from testtime.adapt.cotta import CoTTA


def swa_moments(
    model: nn.Module,
    source_data: SourceData | None,
    *,
    lr: float = 1e-3,
    momentum: float = 0.9,
    max_batches: int = 20,
    batch_size: int = 200,
) -> tuple[list[Tensor], list[Tensor]]:
    """Diagonal SWA(G) moments of the parameters: continue SGD on the labelled source
    data from the trained weights (a copy; ``model`` is untouched) and return the mean
    and variance of the iterates after each of at most ``max_batches`` steps
    (Maddox et al. 2019, the posterior PETAL uses as its prior)."""
    work = frozen_copy(model)
    work.requires_grad_(True)
    work.train()
    params = list(work.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    mean = [p.detach().clone() for p in params]  # the trained point is iterate 0
    sq = [m * m for m in mean]
    n = 1
    for x, y in iter_source_batches(source_data, batch_size, method="PETAL"):
        if n > max_batches:
            break
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(work(x.to(mean[0].device)), y.to(mean[0].device)).backward()
        opt.step()
        n += 1
        with torch.no_grad():
            torch._foreach_lerp_(mean, [p.detach() for p in params], 1.0 / n)
            torch._foreach_lerp_(sq, [p.detach() * p.detach() for p in params], 1.0 / n)
    if n == 1:
        raise ValueError("PETAL: source_data yielded no batches")
    var = [(s - m * m).clamp_min(0.0) for s, m in zip(sq, mean, strict=True)]
    return mean, var


@ADAPT_METHODS.register("petal")
class PETAL(CoTTA):
    """CoTTA plus a source-posterior prior and Fisher-guided restore (PETAL-FIM).

    Loss = CE(teacher → student) + ``prior_weight``·½ Σ (θ − μ)²/(σ² + 1e-6), with
    μ, σ² the SWA moments from ``source_data`` (labelled (x, y) batches or a tensor
    pair, see :func:`swa_moments`) or a given ``prior=(means, variances)``. After each
    step the elements whose squared gradient is below the ``restore_quantile`` (3%)
    quantile over all parameters are reset to source. The default ``prior_weight``
    (1e-6, [verify]) keeps the prior term comparable to the consistency loss for
    CIFAR-sized networks. Other options and the returned prediction are CoTTA's.
    """

    def __init__(
        self,
        model: nn.Module,
        source_data: SourceData | None = None,
        *,
        prior: tuple[list[Tensor], list[Tensor]] | None = None,
        prior_weight: float = 1e-6,
        restore_quantile: float = 0.03,
        **cotta_options: Any,
    ) -> None:
        if prior is None:
            prior = swa_moments(model, source_data)
        cotta_options.setdefault("restore_p", 0.0)  # replaced by the Fisher restore
        super().__init__(model, **cotta_options)
        if len(prior[0]) != len(self.params) or len(prior[1]) != len(self.params):
            raise ValueError("prior must hold one mean and one variance per model parameter")
        device = self.params[0].device
        self.prior_mean = [m.detach().to(device) for m in prior[0]]
        self.prior_precision = [1.0 / (v.detach().to(device) + 1e-6) for v in prior[1]]
        self.prior_weight = prior_weight
        self.restore_quantile = restore_quantile

    def _get_state(self) -> dict[str, Any]:
        return {"prior_mean": self.prior_mean, "prior_precision": self.prior_precision}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.prior_mean, self.prior_precision = state["prior_mean"], state["prior_precision"]

    def regulariser(self) -> Tensor:
        diffs = torch._foreach_sub(self.params, self.prior_mean)
        total = sum((d * d * w).sum() for d, w in zip(diffs, self.prior_precision, strict=True))
        return 0.5 * self.prior_weight * total

    @torch.no_grad()
    def restore(self) -> None:
        super().restore()
        if self.restore_quantile <= 0:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        fisher = torch.cat([(g * g).flatten() for g in grads])
        k = max(1, int(self.restore_quantile * fisher.numel()))
        threshold = fisher.kthvalue(k).values
        for p, p0, g in zip(self.params, self.source_params, grads, strict=True):
            p.copy_(torch.where(g * g <= threshold, p0, p))
