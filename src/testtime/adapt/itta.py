"""ITTA: improved test-time adaptation for domain generalisation (Chen et al., CVPR 2023).

Training time (:func:`train_itta`): as the released code (liangchen527/ITTA,
``algorithms.ITTA.update``) each step (1) trains the network (backbone and head,
BatchNorm frozen) on CE(x) + CE(x_aug) + the learned consistency loss, and (2) trains
the loss's weights so that, over the backbone parameters, its gradient points along
the classification gradient. The augmented copy x_aug re-styles the features after the
first normalisation layer by MixStyle. Test time (:class:`ITTA`): only identity-
initialised affine maps inserted after the norm layers are updated, on the learned loss.
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


def mixstyle(h: Tensor, channel_dim: int = 1, alpha: float = 0.1, eps: float = 1e-6) -> Tensor:
    """MixStyle (Zhou et al., ICLR 2021), ITTA's feature augmentation: each sample's
    per-channel mean/std are mixed with those of a random other sample of the batch,
    λ ~ Beta(α, α) (α 0.1); the statistics carry no gradient."""
    h = h.movedim(channel_dim, 1)
    b = h.shape[0]
    dims = tuple(range(2, h.dim())) or (1,)
    mu = h.mean(dims, keepdim=True).detach()
    sig = (h.var(dims, keepdim=True) + eps).sqrt().detach()
    lam = torch.distributions.Beta(alpha, alpha).sample((b,)).to(h)
    lam = lam.view(b, *([1] * (h.dim() - 1)))
    perm = torch.randperm(b, device=h.device)
    mixed_mu = torch.lerp(mu[perm], mu, lam)
    mixed_sig = torch.lerp(sig[perm], sig, lam)
    return ((h - mu) / sig * mixed_sig + mixed_mu).movedim(1, channel_dim)


class ConsistencyLoss(nn.Module):
    """The learnable loss of the released code (``Adaparams``): an element-wise MLP
    of ``depth`` (10) layers, u ↦ ReLU(w_i ⊙ u + b_i) (no ReLU after the last; w = 1,
    b = 0 at init), on the feature difference z_aug − z; loss = mean of its square."""

    def __init__(self, dim: int, depth: int = 10) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.weight = nn.Parameter(torch.ones(depth, dim))
        self.bias = nn.Parameter(torch.zeros(depth, dim))

    def forward(self, z: Tensor, z_aug: Tensor) -> Tensor:
        u = z_aug - z
        for i in range(self.weight.shape[0]):
            u = u * self.weight[i] + self.bias[i]
            if i < self.weight.shape[0] - 1:
                u = F.relu(u)
        return u.square().mean()


class _Branches:
    """Runs ``model`` on [x; x] with the second half's features re-styled (MixStyle)
    after the first norm layer, inserts the affine maps, and exposes the penultimate
    features."""

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
        return torch.cat([out[:half], mixstyle(out[half:], self.channel_dim)])

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Logits and features of x, and of its augmented copy."""
        self._augment = True
        try:
            logits = self.model(torch.cat([x, x]))
        finally:
            self._augment = False
        z = self.features.pop()
        b = x.shape[0]
        return logits[:b], z[:b], logits[b:], z[b:]


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
    backbone_lr: float = 1e-4,
    train_backbone: bool = True,
    batch_size: int = 64,
    feature_layer: str | None = None,
    log: Callable[[int, float], None] | None = None,
) -> ConsistencyLoss:
    """ITTA's training on labelled source batches (BatchNorm frozen, as the code).

    Per step, as ``algorithms.ITTA.update``: (1) when ``train_backbone`` (default),
    one Adam step (``backbone_lr``) of *all* model parameters on CE(x) + CE(x_aug) +
    the learned loss — the model is changed in place, as the reference trains its
    network with the loss; (2) one Adam step (``lr``) of the loss's weights on
    1 − cos(∇_θ L_cls, ∇_θ L_cons), θ the backbone's parameters (the code's L2
    between normalised gradients, which equals 2 − 2 cos). Deviations: the reference
    trains from the start of source training for its whole schedule; here ``steps``
    fine-tuning steps from the trained source model (``batch_size`` images each; a
    tensor pair is cut into such batches). ``train_backbone=False`` keeps the model
    frozen and aligns the gradients over the test-time affine maps instead."""
    configure_norm(model, "frozen")
    branches = _Branches(model, feature_layer)
    backbone = [p for p in model.parameters()]
    params = backbone if train_backbone else list(branches.maps.parameters())
    net_opt = make_optimizer(backbone, "adam", backbone_lr) if train_backbone else None
    loss_fn: ConsistencyLoss | None = None
    opt: torch.optim.Optimizer | None = None
    step = 0
    if train_backbone:
        model.requires_grad_(True)
    try:
        while step < steps:
            start = step
            for x, y in iter_source_batches(source_data, batch_size, method="ITTA training"):
                device = backbone[0].device
                x, y = x.to(device), y.to(device)
                if loss_fn is None:
                    z = branches(x[:2])[1]
                    loss_fn = ConsistencyLoss(z.shape[1]).to(device)
                    opt = make_optimizer(loss_fn.parameters(), "adam", lr)
                if net_opt is not None:
                    logits, z, logits_aug, z_aug = branches(x)
                    loss = F.cross_entropy(logits, y) + F.cross_entropy(logits_aug, y)
                    loss = loss + loss_fn(z, z_aug)
                    net_opt.zero_grad(set_to_none=True)
                    loss.backward(inputs=backbone)
                    net_opt.step()
                logits, z, logits_aug, z_aug = branches(x)
                cls = F.cross_entropy(logits, y) + F.cross_entropy(logits_aug, y)
                g_cls = _flat_grad(cls, params, False)
                g_cons = _flat_grad(loss_fn(z, z_aug), params, True)
                align = 1 - F.cosine_similarity(g_cls.detach(), g_cons, dim=0, eps=1e-12)
                opt.zero_grad(set_to_none=True)
                align.backward(inputs=list(loss_fn.parameters()))
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
        model.requires_grad_(False)
    if loss_fn is None:
        raise ValueError("ITTA training: source_data yielded no batches")
    loss_fn.requires_grad_(False)
    return loss_fn


@ADAPT_METHODS.register("itta")
class ITTA(AdaptMethod):
    """Test-time part of ITTA: per batch, one step of the learned consistency loss
    between x and its MixStyle copy (one forward pass on [x; x], counted as two),
    updating only the identity-initialised affine maps inserted after every norm
    layer (Adam ``lr`` 1e-4 = the code's 0.1 × lr; BN keeps the source statistics);
    then the batch is predicted with the updated maps (one more forward), as the code
    (``test_adapt`` then ``predict``). ``consistency`` is a :class:`ConsistencyLoss`
    from :func:`train_itta`; without it, it is trained here from ``source_data``
    (labelled batches) for ``train_steps`` steps — which fine-tunes the model's own
    weights (the reference's network is trained with ITTA's objective).

    Deviations from the released code: the maps are per-channel affines after every
    norm layer (the code: 5-layer element-wise maps of full (C, H, W) shape after
    each ResNet stage), MixStyle is applied after the first norm layer (the code: after
    stage 1 or 2 at random), and the code's ``ada_lr`` loss scale is folded into ``lr``.
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
        _, z, _, z_aug = self.branches(x)
        self.forwards += 2
        loss = self.consistency(z, z_aug)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 2
        self.optimizer.step()
        with torch.no_grad():
            logits = self.model(x)
        self.branches.features.pop()
        self.forwards += 1
        return logits
