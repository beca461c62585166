"""Diagonal Fisher information estimates (EATA, PETAL, PSMT)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testtime.adapt.base import SourceData, iter_source_batches


def estimate_fisher(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    source_data: SourceData | None,
    *,
    max_samples: int = 2000,
    batch_size: int = 200,
    method: str = "this method",
) -> list[Tensor]:
    """Diagonal Fisher of ``params``: the mean over batches of the squared gradient of
    the cross-entropy against the model's own argmax labels, on clean source images
    (EATA, Niu et al. ICML 2022, §4.2; labels are not used). The labels of
    ``source_data`` are ignored; at most ``max_samples`` images are used."""
    fisher = [torch.zeros_like(p) for p in params]
    seen = batches = 0
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        for x, _ in iter_source_batches(source_data, batch_size, method=method):
            x = x[: max_samples - seen].to(params[0].device)
            logits = model(x)
            loss = F.cross_entropy(logits, logits.argmax(1))
            grads = torch.autograd.grad(loss, list(params), allow_unused=True)
            for f, g in zip(fisher, grads, strict=True):
                if g is not None:
                    f.add_(g.detach() ** 2)
            seen += x.shape[0]
            batches += 1
            if seen >= max_samples:
                break
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    if batches == 0:
        raise ValueError(f"{method}: source_data yielded no images")
    return [f / batches for f in fisher]
