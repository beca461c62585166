"""RoTTA: robust test-time adaptation in dynamic scenarios (Yuan et al., CVPR 2023)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from testtime.adapt.augment import COTTA_AUGMENT, Augment
from testtime.adapt.base import ADAPT_METHODS, AdaptMethod
from testtime.adapt.common import ema_update, frozen_copy, make_optimizer, soft_cross_entropy
from testtime.adapt.norm import StatsBatchNorm, replace_batchnorm
from testtime.adapt.params import collect_norm_params, configure_norm


class RobustBatchNorm(StatsBatchNorm):
    """Robust BN: normalise with global statistics that, in train mode, move towards
    each batch's statistics by ``alpha`` (0.05) and are kept for the next batch; in
    eval mode normalise with the global statistics and never write them."""

    def __init__(self, bn: nn.Module, alpha: float = 0.05) -> None:
        super().__init__(bn)
        self.alpha = alpha

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        mean, var = self.batch_statistics(x)
        mean = torch.lerp(self.running_mean, mean, self.alpha)
        var = torch.lerp(self.running_var, var, self.alpha)
        with torch.no_grad():
            self.running_mean.copy_(mean)
            self.running_var.copy_(var)
        return mean, var


class CSTU:
    """Category-balanced sampling with timeliness and uncertainty: a memory of
    ``capacity`` test images, at most ``capacity / C`` per predicted class, that
    evicts the item with the highest score λ_t·sigmoid(age/capacity) + λ_u·H/ln C."""

    def __init__(
        self, capacity: int, num_classes: int, lambda_t: float = 1.0, lambda_u: float = 1.0
    ) -> None:
        self.capacity, self.num_classes = capacity, num_classes
        self.lambda_t, self.lambda_u = lambda_t, lambda_u
        # per class: [x, uncertainty, age] items
        self.items: list[list[list[Any]]] = [[] for _ in range(num_classes)]

    def __len__(self) -> int:
        return sum(len(c) for c in self.items)

    def score(self, age: int, uncertainty: float) -> float:
        timeliness = 1.0 / (1.0 + math.exp(-age / self.capacity))
        return self.lambda_t * timeliness + self.lambda_u * uncertainty / math.log(self.num_classes)

    def _evict_from(self, classes: list[int], new_score: float) -> bool:
        """Drop the highest-scoring item of ``classes`` if it scores above the new one."""
        best: tuple[float, int, int] | None = None
        for c in classes:
            for i, (_, unc, age) in enumerate(self.items[c]):
                s = self.score(age, unc)
                if best is None or s >= best[0]:
                    best = (s, c, i)
        if best is None:
            return True
        if best[0] > new_score:
            self.items[best[1]].pop(best[2])
            return True
        return False

    def add(self, x: Tensor, label: int, uncertainty: float) -> None:
        new_score = self.score(0, uncertainty)
        if len(self.items[label]) < self.capacity / self.num_classes:
            if len(self) < self.capacity:
                accept = True
            else:
                sizes = [len(c) for c in self.items]
                majority = [c for c, n in enumerate(sizes) if n == max(sizes)]
                accept = self._evict_from(majority, new_score)
        else:
            accept = self._evict_from([label], new_score)
        if accept:
            self.items[label].append([x, uncertainty, 0])
        for cls in self.items:
            for item in cls:
                item[2] += 1

    def batch(self) -> tuple[Tensor, Tensor] | None:
        """All stored images and their ages / capacity, or None when empty."""
        flat = [item for cls in self.items for item in cls]
        if not flat:
            return None
        ages = torch.tensor([a for _, _, a in flat], dtype=torch.float32) / self.capacity
        return torch.stack([x for x, _, _ in flat]), ages


def _robust_bn_mode(model: nn.Module, training: bool) -> None:
    """Switch only the robust BN layers of ``model`` to train (statistics move) or eval."""
    for m in model.modules():
        if isinstance(m, RobustBatchNorm):
            m.train(training)


@ADAPT_METHODS.register("rotta")
class RoTTA(AdaptMethod):
    """Robust BN (global statistics, ``rbn_alpha`` 0.05) + category-balanced memory
    (``memory_size`` 64, CSTU) + every ``update_frequency`` (64) samples one step of
    the student on strongly augmented memory against the EMA teacher (ν = ``nu``
    0.001), weighted by timeliness exp(−a)/(1 + exp(−a)) of the ages a; only the norm
    affine parameters are trained (Adam 1e-3). The teacher predicts each batch
    (before the updates the batch triggers, as in the paper); the memory stores the
    batch's images under the teacher's pseudo-labels.

    As the reference implementations (BIT-DA/RoTTA; mariodoebler/test-time-adaptation)
    the teacher predicts with its robust BN in eval mode (global statistics, never
    written by a prediction); the robust-BN statistics of the teacher and of the
    student move only during an update, from the memory bank (teacher: the stored
    images; student: their strong augmentations).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        optimizer: str = "adam",
        nu: float = 0.001,
        memory_size: int = 64,
        update_frequency: int = 64,
        rbn_alpha: float = 0.05,
        lambda_t: float = 1.0,
        lambda_u: float = 1.0,
        augment: Augment = COTTA_AUGMENT,
    ) -> None:
        replace_batchnorm(model, lambda bn: RobustBatchNorm(bn, rbn_alpha))
        super().__init__(model)
        if memory_size < 1 or update_frequency < 1:
            raise ValueError("memory_size and update_frequency must be >= 1")
        self.nu, self.memory_size, self.update_frequency = nu, memory_size, update_frequency
        self.lambdas = (lambda_t, lambda_u)
        self.augment = augment
        self.teacher = frozen_copy(model)
        self.optimizer = make_optimizer(collect_norm_params(model)[0], optimizer, lr)
        self.memory: CSTU | None = None  # built on the first batch (needs C)
        self.seen = 0

    def configure(self) -> None:
        configure_norm(self.model, "affine")
        configure_norm(self.teacher, "bn")
        _robust_bn_mode(self.teacher, training=False)

    def _get_state(self) -> dict[str, Any]:
        items = None if self.memory is None else self.memory.items
        return {"items": items, "seen": self.seen}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.seen = state["seen"]
        if state["items"] is None:
            self.memory = None
        else:
            self.memory = CSTU(self.memory_size, len(state["items"]), *self.lambdas)
            self.memory.items = state["items"]

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            out = self.teacher(x)
        self.forwards += 1
        if self.memory is None:
            self.memory = CSTU(self.memory_size, out.shape[1], *self.lambdas)
        probs = out.softmax(1)
        entropy = -(probs * torch.log(probs + 1e-6)).sum(1)
        for xi, label, unc in zip(x, probs.argmax(1).tolist(), entropy.tolist(), strict=True):
            self.memory.add(xi.detach().clone(), label, unc)
            self.seen += 1
            if self.seen % self.update_frequency == 0:
                self.update()
        return out

    def update(self) -> None:
        stored = self.memory.batch() if self.memory is not None else None
        if stored is None:
            return
        images, ages = stored
        _robust_bn_mode(self.teacher, training=True)
        try:
            with torch.no_grad():
                target = self.teacher(images)
        finally:
            _robust_bn_mode(self.teacher, training=False)
        student = self.model(self.augment(images))
        self.forwards += 2
        weights = torch.exp(-ages) / (1.0 + torch.exp(-ages))
        loss = (soft_cross_entropy(student, target) * weights.to(student.device)).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.backwards += 1
        self.optimizer.step()
        ema_update(self.teacher, self.model, 1.0 - self.nu)
