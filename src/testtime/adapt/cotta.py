"""CoTTA: continual test-time domain adaptation (Wang et al., CVPR 2022)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from testtime.adapt.augment import COTTA_AUGMENT, Augment
from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.common import ema_update, frozen_copy, make_optimizer, soft_cross_entropy
from testtime.adapt.params import configure_norm


@ADAPT_METHODS.register("cotta")
class CoTTA(AdaptMethod):
    """Weight-averaged, augmentation-averaged mean teacher with stochastic restore.

    All parameters of the student are trained (BN with batch statistics) with Adam
    (lr 1e-3) on the cross-entropy against the teacher, an EMA (``ema`` 0.999) of the
    student. If the frozen source anchor's mean max-softmax on the batch is below
    ``ap`` (0.92 on CIFAR-10), the teacher target is the mean over ``n_augs`` (32)
    augmented views, else the plain teacher output. After each step every weight
    element is reset to its source value with probability ``restore_p`` (0.01).
    The prediction returned is the teacher's target for the batch (as the paper);
    every view counts as a forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        optimizer: str = "adam",
        ema: float = 0.999,
        restore_p: float = 0.01,
        ap: float = 0.92,
        n_augs: int = 32,
        augment: Augment = COTTA_AUGMENT,
    ) -> None:
        super().__init__(model)
        if not 0.0 <= restore_p <= 1.0:
            raise ValueError(f"restore_p must be in [0, 1], got {restore_p}")
        self.ema, self.restore_p, self.ap, self.n_augs = ema, restore_p, ap, n_augs
        self.augment = augment
        self.configure_student()
        self.teacher = frozen_copy(model)
        self.anchor = frozen_copy(model)  # the source model; also the restore target
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.source_params = [p for p in self.anchor.parameters()]
        self.optimizer = make_optimizer(self.params, optimizer, lr)

    def configure_student(self) -> None:
        configure_norm(self.model, "all")

    def configure(self) -> None:
        self.configure_student()
        configure_norm(self.teacher, "bn")
        configure_norm(self.anchor, "bn")

    def regulariser(self) -> Tensor | float:
        """Extra loss term added to the consistency loss (none for CoTTA)."""
        return 0.0

    @torch.no_grad()
    def restore(self) -> None:
        """Stochastic restore: each element back to its source value with prob. p."""
        if self.restore_p <= 0:
            return
        for p, p0 in zip(self.params, self.source_params, strict=True):
            p.copy_(torch.where(torch.rand_like(p) < self.restore_p, p0, p))

    @torch.no_grad()
    def teacher_target(self, x: Tensor) -> Tensor:
        anchor_conf = self.anchor(x).softmax(1).amax(1).mean()
        self.forwards += 1
        target = self.teacher(x)
        self.forwards += 1
        if self.n_augs > 0 and anchor_conf < self.ap:
            target = torch.stack([self.teacher(self.augment(x)) for _ in range(self.n_augs)]).mean(
                0
            )
            self.forwards += self.n_augs
        return target

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        outputs = self.model(x)
        self.forwards += 1
        target = self.teacher_target(x)
        loss = soft_cross_entropy(outputs, target).mean() + self.regulariser()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 1
        self.before_step()
        self.optimizer.step()
        self.update_teacher()
        self.restore()
        return target

    def before_step(self) -> None:
        """Called between backward and the optimizer step (gradients available)."""

    def update_teacher(self) -> None:
        ema_update(self.teacher, self.model, self.ema)
