"""Tent: fully test-time adaptation by entropy minimisation (Wang et al., ICLR 2021)."""

from __future__ import annotations

from torch import Tensor, nn

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.common import make_optimizer, softmax_entropy
from testtime.adapt.params import collect_norm_params, configure_norm


@ADAPT_METHODS.register("tent")
class Tent(AdaptMethod):
    """Minimise the mean prediction entropy of each test batch, one step per batch,
    updating only the affine parameters of the norm layers (BN with batch statistics).

    CIFAR defaults: Adam, lr 1e-3. ImageNet: ``optimizer="sgd", lr=2.5e-4`` (momentum
    0.9, batch 64). ``episodic=True`` resets the model before every batch. The
    prediction returned is the one of the forward pass that drives the update.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        optimizer: str = "adam",
        momentum: float = 0.9,
        episodic: bool = False,
    ) -> None:
        super().__init__(model)
        self.episodic = episodic
        self.optimizer = make_optimizer(
            collect_norm_params(model)[0], optimizer, lr, momentum=momentum
        )

    def configure(self) -> None:
        configure_norm(self.model, "affine")

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        if self.episodic:
            self.reset()
        logits = self.model(x)
        loss = softmax_entropy(logits).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.forwards += 1
        self.backwards += 1
        return logits.detach()
