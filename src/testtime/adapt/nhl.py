"""NHL: neuro-modulated Hebbian learning for fully test-time adaptation
(Tang et al., CVPR 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.common import make_optimizer, softmax_entropy
from testtime.adapt.params import ChannelAffine, configure_norm


def first_conv(model: nn.Module, name: str | None = None) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``model`` in module order (or the one named)."""
    if name is not None:
        module = dict(model.named_modules()).get(name)
        if not isinstance(module, nn.Conv2d):
            raise ValueError(f"first_layer {name!r} is not an nn.Conv2d of the model")
        return module
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError("NHL needs a model whose first layer is an nn.Conv2d")


@torch.no_grad()
def soft_hebbian_update(
    conv: nn.Conv2d, inputs: Tensor, lr: float, temperature: float = 1.0, max_patches: int = 4096
) -> None:
    """One soft-competitive Oja step on the filters of ``conv`` (no backprop).

    For input patches u and unit-norm filters ŵ_j with responses y_j = ŵ_j·u, the
    channels compete through a = softmax(y/τ) and Δŵ_j = lr·mean_u a_j (u − y_j ŵ_j)
    (Oja's rule, soft winner-take-all). Each filter keeps its norm, so the layer's
    scale, which the rest of the pretrained network depends on, is preserved.
    """
    patches = F.unfold(
        inputs, conv.kernel_size, conv.dilation, conv.padding, conv.stride
    )  # (B, k, L)
    if conv.groups != 1:
        raise ValueError("NHL's Hebbian update supports only non-grouped first convolutions")
    u = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    if u.shape[0] > max_patches:
        u = u[torch.randint(u.shape[0], (max_patches,), device=u.device)]
    w = conv.weight.flatten(1)  # (out, k)
    norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w_hat = w / norms
    y = u @ w_hat.T  # (N, out)
    a = (y / temperature).softmax(1)
    delta = (a.T @ u - (a * y).sum(0).unsqueeze(1) * w_hat) / u.shape[0]
    w_new = F.normalize(w_hat + lr * delta, dim=1) * norms
    conv.weight.copy_(w_new.view_as(conv.weight))


@ADAPT_METHODS.register("nhl")
class NHL(AdaptMethod):
    """Soft Hebbian update of the first convolution plus an entropy-trained
    neuro-modulator; the rest of the network (classifier included) is frozen.

    [verify] Implemented: after each batch's forward pass, the first conv's filters
    take one :func:`soft_hebbian_update` step (``hebb_lr`` 1e-4, ``temperature`` 1) on
    that batch's input patches; the neuro-modulator is an identity-initialised
    per-channel affine map on the first conv's output, trained by entropy
    minimisation (Adam ``lr`` 1e-3); BN layers normalise with batch statistics.
    The prediction returned is the one of the forward pass that drives the updates.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        hebb_lr: float = 1e-4,
        temperature: float = 1.0,
        first_layer: str | None = None,
    ) -> None:
        super().__init__(model)
        self.conv = first_conv(model, first_layer)
        self.hebb_lr, self.temperature = hebb_lr, temperature
        self.modulator = ChannelAffine(self.conv, self.conv.out_channels)
        self._inputs: Tensor | None = None
        self._hook = self.conv.register_forward_pre_hook(self._record)
        self.optimizer = make_optimizer(self.modulator.parameters(), "adam", lr)

    def _record(self, module: nn.Module, args: tuple) -> None:
        del module
        self._inputs = args[0].detach()

    def configure(self) -> None:
        configure_norm(self.model, "bn")
        self.modulator.requires_grad_(True)

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        self.forwards += 1
        loss = softmax_entropy(logits).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 1
        self.optimizer.step()
        if self._inputs is not None and self.hebb_lr > 0:
            soft_hebbian_update(self.conv, self._inputs, self.hebb_lr, self.temperature)
            self._inputs = None
        return logits.detach()
