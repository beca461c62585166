"""ITTA: improved test-time adaptation for domain generalisation (Chen et al., CVPR 2023).

Training time (:func:`train_itta`): a learnable consistency loss between the
features of an input and of a feature-augmented copy is trained so that its
gradient w.r.t. the adaptable parameters points along the classification
gradient. Test time (:class:`ITTA`): only identity-initialised per-channel affine
maps inserted after the norm layers are updated, on that learned loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod, SourceData, iter_source_batches
from testtime.adapt.common import make_optimizer
from testtime.adapt.params import (
    ChannelAffine,
    FeatureHook,
    channels_of,
    configure_norm,
    norm_modules,
)


def perturb_statistics(h: Tensor, channel_dim: int = 1) -> Tensor:
    """Feature augmentation by uncertain statistics (DSU, Li et al. 2022): re-style
    each sample's per-channel mean/std with Gaussian noise scaled by the batch's
    spread of those statistics."""
    if h.dim() < 3:
        return h + torch.randn_like(h) * h.std(0, keepdim=True)
    h = h.movedim(channel_dim, 1)
    dims = tuple(range(2, h.dim()))
    mu = h.mean(dims, keepdim=True)
    sig = (h.var(dims, keepdim=True) + 1e-6).sqrt()
    spread_mu = (mu.var(0, keepdim=True, correction=0) + 1e-6).sqrt()
    spread_sig = (sig.var(0, keepdim=True, correction=0) + 1e-6).sqrt()
    new_mu = mu + torch.randn_like(mu) * spread_mu
    new_sig = sig + torch.randn_like(sig) * spread_sig
    return ((h - mu) / sig * new_sig + new_mu).movedim(1, channel_dim)


class ConsistencyLoss(nn.Module):
    """The learnable consistency loss mean‖A (z − z')‖² (A: d×d, identity-initialised)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        nn.init.eye_(self.proj.weight)

    def forward(self, z: Tensor, z_aug: Tensor) -> Tensor:
        return self.proj(z - z_aug).square().sum(1).mean()


class _Branches:
    """Runs ``model`` on [x; x] with the second half's features perturbed after the
    first norm layer, inserts the affine maps, and exposes the penultimate features."""

    def __init__(self, model: nn.Module, feature_layer: str | None) -> None:
        norms = norm_modules(model)
        if not norms:
            raise ValueError("ITTA needs a model with normalisation layers")
        device = next(model.parameters()).device
        self.maps = nn.ModuleList(ChannelAffine(m, *channels_of(m)) for _, m in norms).to(device)
        first = norms[0][1]
        self.channel_dim = channels_of(first)[1]
        self._augment = False
        self._handle = first.register_forward_hook(self._perturb)
        self.features = FeatureHook(model, feature_layer)
        self.model = model

    def remove(self) -> None:
        """Take every hook out of the model."""
        for m in self.maps:
            m.remove()
        self._handle.remove()
        self.features.remove()

    def _perturb(self, module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
        del module, args
        if not self._augment:
            return None
        half = out.shape[0] // 2
        return torch.cat([out[:half], perturb_statistics(out[half:], self.channel_dim)])

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits of x, features of x, features of the augmented copy."""
        self._augment = True
        try:
            logits = self.model(torch.cat([x, x]))
        finally:
            self._augment = False
        z = self.features.pop()
        b = x.shape[0]
        return logits[:b], z[:b], z[b:]


def _flat_grad(loss: Tensor, params: list[nn.Parameter], create_graph: bool) -> Tensor:
    # the graph is kept: both losses share the forward pass
    grads = torch.autograd.grad(
        loss, params, retain_graph=True, create_graph=create_graph, allow_unused=True
    )
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, params, strict=True)
        ]
    )


def train_itta(
    model: nn.Module,
    source_data: SourceData,
    *,
    steps: int = 100,
    lr: float = 1e-3,
    batch_size: int = 64,
    feature_layer: str | None = None,
    log: Callable[[int, float], None] | None = None,
) -> ConsistencyLoss:
    """Train ITTA's consistency loss on labelled source batches, the model frozen:
    minimise 1 − cos(∇_a L_cls, ∇_a L_cons) over the loss's weights, a being the
    affine maps adapted at test time (identity here). Each step costs a double
    backward through the network on 2×``batch_size`` images (tensor-pair source data
    is cut into such batches). Returns the trained loss; the model is left unchanged
    (the maps are removed)."""
    configure_norm(model, "frozen")
    branches = _Branches(model, feature_layer)
    params = list(branches.maps.parameters())
    loss_fn: ConsistencyLoss | None = None
    opt: torch.optim.Optimizer | None = None
    step = 0
    try:
        while step < steps:
            start = step
            for x, y in iter_source_batches(source_data, batch_size, method="ITTA training"):
                device = params[0].device
                logits, z, z_aug = branches(x.to(device))
                if loss_fn is None:
                    loss_fn = ConsistencyLoss(z.shape[1]).to(device)
                    opt = make_optimizer(loss_fn.parameters(), "adam", lr)
                g_cls = _flat_grad(F.cross_entropy(logits, y.to(device)), params, False)
                g_cons = _flat_grad(loss_fn(z, z_aug), params, True)
                align = 1 - F.cosine_similarity(g_cls.detach(), g_cons, dim=0, eps=1e-12)
                opt.zero_grad(set_to_none=True)
                align.backward()
                opt.step()
                if log is not None:
                    log(step, align.item())
                step += 1
                if step >= steps:
                    break
            if step == start:  # an exhausted (or empty) iterable: stop here
                break
    finally:
        branches.remove()
    if loss_fn is None:
        raise ValueError("ITTA training: source_data yielded no batches")
    loss_fn.requires_grad_(False)
    return loss_fn


@ADAPT_METHODS.register("itta")
class ITTA(AdaptMethod):
    """Test-time part of ITTA: per batch, one step of the learned consistency loss
    between x and its feature-augmented copy (one forward pass on [x; x], counted as
    two), updating only the identity-initialised affine maps inserted after every
    norm layer (Adam ``lr`` 1e-4; BN keeps the source statistics). ``consistency``
    is a :class:`ConsistencyLoss` from :func:`train_itta`; without it, it is trained
    here from ``source_data`` (labelled batches) for ``train_steps`` steps.

    [verify] Implemented: the feature augmentation (DSU-style statistics noise after
    the first norm layer), the loss form mean‖A(z − z')‖² on penultimate features and
    the gradient alignment on the affine maps are this library's reading of the paper.
    The prediction returned is the one of the forward pass that drives the update.
    """

    def __init__(
        self,
        model: nn.Module,
        consistency: ConsistencyLoss | None = None,
        source_data: SourceData | None = None,
        *,
        lr: float = 1e-4,
        train_steps: int = 100,
        feature_layer: str | None = None,
    ) -> None:
        if consistency is None:
            if source_data is None:
                raise ValueError("ITTA needs consistency= (from train_itta) or source_data")
            consistency = train_itta(
                model, source_data, steps=train_steps, feature_layer=feature_layer
            )
        super().__init__(model)
        self.consistency = consistency
        self.branches = _Branches(model, feature_layer)
        self.maps = self.branches.maps
        self.optimizer = make_optimizer(self.maps.parameters(), "adam", lr)

    def configure(self) -> None:
        configure_norm(self.model, "frozen")
        self.consistency.requires_grad_(False)
        self.maps.requires_grad_(True)

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits, z, z_aug = self.branches(x)
        self.forwards += 2
        loss = self.consistency(z, z_aug)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 2
        self.optimizer.step()
        return logits.detach()
