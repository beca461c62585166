"""Clean CIFAR-10 accuracy and calibration of a source model."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float [0, 1] NCHW."""
    t = torch.as_tensor(images)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 NHWC ``images``."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = to_float(images[i : i + batch_size]).contiguous(memory_format=torch.channels_last)
        correct += (model(x).argmax(1) == torch.as_tensor(labels[i : i + batch_size])).sum().item()
    model.train(was_training)
    return correct / len(images)


@torch.no_grad()
def calibration(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> dict[str, float]:
    """Clean accuracy, ECE (15 equal-width confidence bins), NLL, mean max-softmax and
    the fraction of images whose prediction entropy is below EATA/SAR's E0 = 0.4·ln C."""
    model.eval()
    logits = torch.cat(
        [model(to_float(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    ).float()
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    bins = torch.clamp((conf * 15).long(), max=14)
    ece = sum(
        (bins == b).float().mean() * (correct[bins == b].mean() - conf[bins == b].mean()).abs()
        for b in range(15)
        if (bins == b).any()
    )
    entropy = -(probs * logits.log_softmax(1)).sum(1)
    return {
        "accuracy": float(correct.mean()),
        "ece": float(ece),
        "nll": float(F.cross_entropy(logits, y)),
        "mean_max_softmax": float(conf.mean()),
        "frac_below_e0": float((entropy < 0.4 * math.log(logits.shape[1])).float().mean()),
    }
