"""CAFA: class-aware feature alignment for test-time adaptation (Jung et al., ICCV 2023)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod, SourceData, iter_source_batches
from testtime.adapt.common import make_optimizer
from testtime.adapt.params import FeatureHook, collect_norm_params, configure_norm

COVARIANCES = ("tied", "class")


@torch.no_grad()
def class_gaussians(
    model: nn.Module,
    hook: FeatureHook,
    source_data: SourceData | None,
    num_classes: int | None = None,
    shrinkage: float = 0.1,
    covariance: str = "tied",
) -> tuple[Tensor, Tensor]:
    """Class means μ_c (C, d) and Cholesky factors of the precisions Σ_c⁻¹ (C, d, d)
    of the penultimate features of labelled source images (the model is run as
    configured by the caller: CAFA uses the source BN statistics).

    ``covariance="tied"`` (default): one within-class covariance pooled over all
    classes (N − C degrees of freedom), shared by every class; ``"class"``: one per
    class (the paper's Σ_c, singular when a class has fewer images than feature
    dimensions). Either is shrunk towards its mean variance times I (weight
    ``shrinkage``, 0.1), which keeps it invertible."""
    if covariance not in COVARIANCES:
        raise ValueError(f"unknown covariance {covariance!r}; valid: {', '.join(COVARIANCES)}")
    device = next(model.parameters()).device
    feats, labels = [], []
    for x, y in iter_source_batches(source_data, method="CAFA"):
        logits = model(x.to(device))
        num_classes = num_classes or logits.shape[1]
        feats.append(hook.pop().double())
        labels.append(y.to(feats[-1].device).long())
    if not feats:
        raise ValueError("CAFA: source_data yielded no batches")
    z, y = torch.cat(feats), torch.cat(labels)
    d = z.shape[1]
    eye = torch.eye(d, dtype=z.dtype, device=z.device)

    def shrunk(cov: Tensor) -> Tensor:
        # convex shrinkage towards a scaled identity: well-conditioned for any sample size
        return torch.lerp(cov, cov.diagonal().mean().clamp_min(1e-12) * eye, shrinkage)

    means, scatters, counts = [], [], []
    for c in range(num_classes):
        zc = z[y == c]
        if zc.shape[0] < 2:
            raise ValueError(f"CAFA: source_data needs at least 2 images of class {c}")
        mu = zc.mean(0)
        means.append(mu)
        scatters.append((zc - mu).T @ (zc - mu))
        counts.append(zc.shape[0])
    if covariance == "tied":
        pooled = shrunk(sum(scatters) / (sum(counts) - num_classes))
        factor = torch.linalg.cholesky(torch.linalg.inv(pooled))
        factors = factor.expand(num_classes, d, d)
    else:
        factors = torch.stack(
            [
                torch.linalg.cholesky(torch.linalg.inv(shrunk(s / (n - 1))))
                for s, n in zip(scatters, counts, strict=True)
            ]
        )
    return torch.stack(means).float(), factors.float().contiguous()


@ADAPT_METHODS.register("cafa")
class CAFA(AdaptMethod):
    """Align test features with the source class-conditional Gaussians: loss =
    mean_i log[D_ŷ(x_i) / Σ_c D_c(x_i)] with D_c the Mahalanobis distance to class
    c and ŷ the prediction; BN affine updated like Tent (Adam 1e-3, BN batch stats).

    ``source_data`` (labelled (x, y) batches or a tensor pair; a few hundred images
    per class) gives μ_c and Σ_c of the penultimate features (the input of the last
    ``nn.Linear`` or of ``feature_layer``) under the source model. Deviation from the
    paper (per-class Σ_c): by default one tied (pooled within-class) covariance,
    shrunk (``shrinkage`` 0.1) — per-class covariances from ~200 images in 256
    dimensions are singular, and CAFA with them did worse than BN adaptation;
    ``covariance="class"`` gives the paper's per-class form (also shrunk). The
    prediction returned is the one of the forward pass that drives the update.
    """

    def __init__(
        self,
        model: nn.Module,
        source_data: SourceData | None = None,
        *,
        lr: float = 1e-3,
        optimizer: str = "adam",
        shrinkage: float = 0.1,
        covariance: str = "tied",
        feature_layer: str | None = None,
    ) -> None:
        super().__init__(model)
        self.hook = FeatureHook(model, feature_layer)
        configure_norm(model, "frozen")
        means, factors = class_gaussians(
            model, self.hook, source_data, shrinkage=shrinkage, covariance=covariance
        )
        self.register_buffer("means", means)
        self.register_buffer("factors", factors)
        self.optimizer = make_optimizer(collect_norm_params(model)[0], optimizer, lr)

    def configure(self) -> None:
        configure_norm(self.model, "affine")

    def mahalanobis(self, feats: Tensor) -> Tensor:
        """Squared Mahalanobis distances (B, C) of features to every class Gaussian."""
        diff = feats.unsqueeze(1) - self.means.unsqueeze(0)  # (B, C, d)
        return torch.einsum("bcd,cde->bce", diff, self.factors).square().sum(-1)

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        self.forwards += 1
        dist = self.mahalanobis(self.hook.pop().float())
        own = dist.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
        loss = (own.clamp_min(1e-12).log() - dist.sum(1).clamp_min(1e-12).log()).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.backwards += 1
        return logits.detach()
