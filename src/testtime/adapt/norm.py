"""Normalisation baselines: ``source`` (no adaptation), ``bn`` (test-batch statistics,
Schneider et al. 2020 / Nado et al. 2020) and ``bn-alpha`` (α-BN, You et al. 2021:
mix source and test-batch statistics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.params import batchnorm_modules, configure_norm, replace_modules


class StatsBatchNorm(_BatchNorm):
    """A BatchNorm that normalises with statistics chosen by :meth:`statistics`.

    It *shares* the parameters and running buffers of the BatchNorm it replaces, so
    state-dict keys and optimizer references are unchanged.
    """

    def __init__(self, bn: _BatchNorm) -> None:
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("this method needs BatchNorm layers with source running statistics")
        super().__init__(bn.num_features, bn.eps, bn.momentum, bn.affine, True)
        self.weight, self.bias = bn.weight, bn.bias
        self.running_mean, self.running_var = bn.running_mean, bn.running_var
        self.num_batches_tracked = bn.num_batches_tracked

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {input.dim()}D")

    @staticmethod
    def batch_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        return mean, var

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        mean, var = self.statistics(input)
        if not (mean.requires_grad or var.requires_grad):
            return F.batch_norm(input, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        # statistics that carry gradients (RoTTA's RBN) cannot go through F.batch_norm
        shape = (1, -1) + (1,) * (input.dim() - 2)
        out = (input - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class AlphaBatchNorm(StatsBatchNorm):
    """μ = α·μ_source + (1 − α)·μ_batch, same for σ² (α-BN)."""

    def __init__(self, bn: _BatchNorm, alpha: float) -> None:
        super().__init__(bn)
        self.alpha = alpha

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self.batch_statistics(x)
        a = self.alpha
        return torch.lerp(mean, self.running_mean, a), torch.lerp(var, self.running_var, a)


PLAIN_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def replace_batchnorm(model: nn.Module, build) -> int:
    """Swap every plain BatchNorm of ``model`` (in place) for ``build(bn)``.

    Subclasses with extra behaviour (e.g. timm's ``BatchNormAct2d``, which applies an
    activation) are refused rather than silently changed."""
    for m in model.modules():
        plain = type(m) in PLAIN_BATCHNORMS or isinstance(m, StatsBatchNorm)
        if isinstance(m, _BatchNorm) and not plain:
            raise ValueError(f"cannot replace {type(m).__name__}: only plain BatchNorm layers")
    n = replace_modules(model, lambda m: type(m) in PLAIN_BATCHNORMS, build)
    if n == 0 and not any(isinstance(m, StatsBatchNorm) for m in model.modules()):
        raise ValueError("this method needs a model with BatchNorm layers")
    return n


@ADAPT_METHODS.register("source")
class Source(AdaptMethod):
    """The unadapted source model (eval mode, no gradients)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)

    def configure(self) -> None:
        configure_norm(self.model, "frozen")

    @torch.no_grad()
    def forward_and_adapt(self, x: Tensor) -> Tensor:
        self.forwards += 1
        return self.model(x)


@ADAPT_METHODS.register("bn")
class BNAdapt(Source):
    """BN adapt: every BatchNorm normalises with the test batch's statistics, no
    gradients (Schneider et al., NeurIPS 2020; Nado et al. 2020)."""

    def __init__(self, model: nn.Module) -> None:
        if not batchnorm_modules(model):
            raise ValueError("bn adaptation needs a model with BatchNorm layers")
        super().__init__(model)

    def configure(self) -> None:
        configure_norm(self.model, "bn")


@ADAPT_METHODS.register("bn-alpha")
class BNAlpha(Source):
    """α-BN (You et al., "Test-time batch statistics calibration for covariate
    shift", 2021): normalise with α·source + (1 − α)·batch statistics; no gradients.

    ``alpha`` is the weight of the source statistics (0.1 by default; 0 = ``bn``,
    1 = ``source``). The model's BatchNorm layers are replaced in place by
    :class:`AlphaBatchNorm` modules sharing their parameters and buffers.
    """

    def __init__(self, model: nn.Module, alpha: float = 0.1) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        replace_batchnorm(model, lambda bn: AlphaBatchNorm(bn, alpha))
        super().__init__(model)
