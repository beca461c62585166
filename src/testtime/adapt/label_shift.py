"""Label shift adapter (Park et al., "Label Shift Adapter for Test-Time Adaptation
under Covariate and Label Shifts", ICCV 2023).

Training time (:func:`train_label_shift_adapter`): a small network maps a target
label distribution π to replacement parameters of the classifier head, trained on
source data with a logit-adjusted loss for random π. Test time
(:class:`LabelShiftTTA`): π is estimated on each test batch (EM on the adapted
posteriors, started from the previous batch's estimate), the adapter's parameters are
plugged into the head, and Tent adapts the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod, SourceData, iter_source_batches
from testtime.adapt.common import make_optimizer, softmax_entropy
from testtime.adapt.params import collect_norm_params, configure_norm


class LabelShiftAdapter(nn.Module):
    """π ↦ (s, b): the logits become ``logits·(1 + s) + b``; for a linear head this
    replaces its weights by (1 + s)·W and its bias by (1 + s)·b₀ + b. An MLP on log π;
    its last layer is zero-initialised, so an untrained adapter is the identity. It is
    applied to the model's output, so heads followed by a fixed scale work too."""

    def __init__(self, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(num_classes, hidden), nn.ReLU(), nn.Linear(hidden, 2 * num_classes)
        )
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)
        self.register_buffer("source_prior", torch.full((num_classes,), 1.0 / num_classes))

    def forward(self, logits: Tensor, prior: Tensor) -> Tensor:
        out = self.net(prior.clamp_min(1e-8).log())
        scale, shift = out[..., : self.num_classes], out[..., self.num_classes :]
        return logits * (1 + scale) + shift


def train_label_shift_adapter(
    model: nn.Module,
    source_data: SourceData,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    concentration: float = 1.0,
    log: Callable[[int, float], None] | None = None,
) -> LabelShiftAdapter:
    """Train an adapter for ``model`` (frozen, source statistics) on labelled source
    batches. For each step draw π ~ Dirichlet(``concentration``) and minimise the
    logit-adjusted loss CE(adapter(logits, π) − log π + log π_s, y) on source samples:
    its minimiser makes adapter(logits, π) the posterior under target prior π. The
    head is the only part replaced, so the source logits are computed once."""
    configure_norm(model, "frozen")
    device = next(model.parameters()).device
    with torch.no_grad():
        pairs = [
            (model(x.to(device)), y.to(device).long())
            for x, y in iter_source_batches(source_data, method="label-shift training")
        ]
    if not pairs:
        raise ValueError("label-shift training: source_data yielded no batches")
    logits = torch.cat([p[0] for p in pairs])
    labels = torch.cat([p[1] for p in pairs])
    num_classes = logits.shape[1]
    adapter = LabelShiftAdapter(num_classes).to(device)
    counts = torch.bincount(labels, minlength=num_classes).float()
    adapter.source_prior.copy_(counts / counts.sum())
    log_ps = adapter.source_prior.clamp_min(1e-8).log()
    opt = make_optimizer(adapter.parameters(), "adam", lr)
    dirichlet = torch.distributions.Dirichlet(
        torch.full((num_classes,), concentration, device=device)
    )
    for step in range(steps):
        idx = torch.randint(len(labels), (batch_size,), device=device)
        prior = dirichlet.sample()
        adjusted = adapter(logits[idx], prior) - prior.clamp_min(1e-8).log() + log_ps
        loss = F.cross_entropy(adjusted, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None:
            log(step, loss.item())
    adapter.requires_grad_(False)
    return adapter


@ADAPT_METHODS.register("label-shift")
class LabelShiftTTA(AdaptMethod):
    """Tent on the norm layers, with the classifier head's parameters supplied by a
    :class:`LabelShiftAdapter` for the current label-distribution estimate π̂.

    π̂ for a batch is estimated from that batch (label-free, like its BN
    statistics): starting from the previous batch's estimate (at first the source
    prior), ``em_steps`` (3) EM steps of Saerens et al. (2002) set π̂ to the batch's
    mean adapted posterior softmax(adapter(logits, π̂)), each followed by a floor of
    ``prior_floor`` (1e-3) and renormalisation; the result is mixed with the previous
    estimate by ``prior_momentum`` (0: the batch alone). The adapted logits of the
    final π̂ are the prediction and drive the Tent step. The adapter's MLP is cheap,
    so the EM steps add no network pass. (This replaces an EMA of the predictions
    over batches (momentum 0.9), which lagged label-shift segments of a few batches
    and did worse than the source model.) ``adapter`` comes from
    :func:`train_label_shift_adapter`; without it, it is trained here from
    ``source_data`` (labelled batches, ``train_steps`` steps). [verify] The adapter's
    form (per-class scale and shift of the head), the training prior (Dirichlet) and
    the per-batch EM are this library's reading of the paper.
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: LabelShiftAdapter | None = None,
        source_data: SourceData | None = None,
        *,
        lr: float = 1e-3,
        optimizer: str = "adam",
        prior_momentum: float = 0.0,
        em_steps: int = 3,
        prior_floor: float = 1e-3,
        train_steps: int = 2000,
    ) -> None:
        if not 0.0 <= prior_momentum < 1.0:
            raise ValueError(f"prior_momentum must be in [0, 1), got {prior_momentum}")
        if em_steps < 0:
            raise ValueError(f"em_steps must be >= 0, got {em_steps}")
        if adapter is None:
            if source_data is None:
                raise ValueError(
                    "label-shift needs adapter= (train_label_shift_adapter) or source_data"
                )
            adapter = train_label_shift_adapter(model, source_data, steps=train_steps)
        super().__init__(model)
        self.adapter = adapter
        self.prior_momentum, self.em_steps, self.prior_floor = prior_momentum, em_steps, prior_floor
        self.register_buffer("prior", adapter.source_prior.detach().clone())
        self.optimizer = make_optimizer(collect_norm_params(model)[0], optimizer, lr)

    def configure(self) -> None:
        configure_norm(self.model, "affine")
        self.adapter.requires_grad_(False)

    @torch.no_grad()
    def estimate_prior(self, logits: Tensor) -> Tensor:
        """π̂ for this batch: EM from the previous estimate, mixed by the momentum."""
        prior = self.prior.clone()
        for _ in range(self.em_steps):
            prior = self.adapter(logits, prior).softmax(1).mean(0).clamp_min(self.prior_floor)
            prior = prior / prior.sum()
        return torch.lerp(prior, self.prior, self.prior_momentum)

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        source_logits = self.model(x)
        self.forwards += 1
        self.prior.copy_(self.estimate_prior(source_logits.detach()))
        logits = self.adapter(source_logits, self.prior)
        loss = softmax_entropy(logits).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 1
        self.optimizer.step()
        return logits.detach()
