"""Label shift adapter (Park et al., "Label Shift Adapter for Test-Time Adaptation
under Covariate and Label Shifts", ICCV 2023).

Training time (:func:`train_label_shift_adapter`): a small network maps a target
label distribution π to replacement parameters of the classifier head, trained on
source data with a logit-adjusted loss for random π. Test time
(:class:`LabelShiftTTA`): π is estimated online by an EMA of the predictions, the
adapter's parameters are plugged into the head, and Tent adapts the rest.
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

    π̂ starts at the adapter's source prior and is updated after each batch as an EMA
    (``prior_momentum`` 0.9) of the batch's mean adapted prediction. ``adapter``
    comes from :func:`train_label_shift_adapter`; without it, it is trained here
    from ``source_data`` (labelled batches, ``train_steps`` steps). [verify] The
    adapter's form (per-class scale and shift of the head) and the training prior
    (Dirichlet) are this library's reading of the paper. The prediction returned is
    the one of the forward pass that drives the update.
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: LabelShiftAdapter | None = None,
        source_data: SourceData | None = None,
        *,
        lr: float = 1e-3,
        optimizer: str = "adam",
        prior_momentum: float = 0.9,
        train_steps: int = 2000,
    ) -> None:
        if adapter is None:
            if source_data is None:
                raise ValueError(
                    "label-shift needs adapter= (train_label_shift_adapter) or source_data"
                )
            adapter = train_label_shift_adapter(model, source_data, steps=train_steps)
        super().__init__(model)
        self.adapter = adapter
        self.prior_momentum = prior_momentum
        self.register_buffer("prior", adapter.source_prior.detach().clone())
        self.optimizer = make_optimizer(collect_norm_params(model)[0], optimizer, lr)

    def configure(self) -> None:
        configure_norm(self.model, "affine")
        self.adapter.requires_grad_(False)

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits = self.adapter(self.model(x), self.prior)
        self.forwards += 1
        loss = softmax_entropy(logits).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 1
        self.optimizer.step()
        with torch.no_grad():
            self.prior.lerp_(logits.softmax(1).mean(0), 1 - self.prior_momentum)
        return logits.detach()
