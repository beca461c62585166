"""LPN's test-time search over the latent program space (Macfarlane & Bonnet 2024,
§3.2): start from the encoder's mean latent of the example pairs, then spend compute
on the examples' log-likelihood under the decoder. Modes: ``none`` (the mean latent),
``random`` (the best of ``steps`` samples from the pairs' posterior), ``gradient``
(``steps`` Adam steps of gradient ascent), ``both`` (random search, then gradient
ascent from its winner; the steps split in half). FLOPs count decoder passes (a
backward pass as two forwards). A batch of tasks is searched at once, each task on
its own examples (:func:`search_batch`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from testtime.programs.lpn.model import LPN

MODES = ("none", "random", "gradient", "both")


@dataclass
class SearchResult:
    z: torch.Tensor  # (latent,), or (tasks, latent) for a batch of tasks
    log_likelihood: torch.Tensor  # of each task's examples under its z
    flops: int  # per task


def _random(model: LPN, x, y, mean, logvar, count: int, generator) -> tuple[torch.Tensor, int]:
    std = (0.5 * logvar).exp().mean(-2)  # (B, L): the pairs' mean posterior spread
    noise = torch.randn(x.shape[0], count, mean.shape[-1], generator=generator)
    candidates = torch.cat([mean.mean(-2)[:, None], mean.mean(-2)[:, None] + std[:, None] * noise], 1)
    with torch.no_grad():  # (B, count + 1) scores: each candidate against its task's k pairs
        scores = model.log_likelihood(x[:, None], y[:, None], candidates[:, :, None, :])
    best = candidates[torch.arange(x.shape[0]), scores.argmax(1)]
    return best, (count + 1) * x.shape[1] * model.decoder_flops


def _gradient(model: LPN, x, y, z: torch.Tensor, steps: int, lr: float) -> tuple[torch.Tensor, int]:
    # Adam is elementwise and the tasks' likelihoods are separate terms of the sum, so
    # one optimiser over the batch is each task's own gradient ascent.
    z = z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-model.log_likelihood(x, y, z[:, None, :]).sum()).backward()
        opt.step()
    return z.detach(), 3 * steps * x.shape[1] * model.decoder_flops


def search_batch(model: LPN, inputs: torch.Tensor, outputs: torch.Tensor, mode: str = "gradient",
                 steps: int = 10, lr: float = 0.1, seed: int = 0) -> SearchResult:
    """Latents explaining each task's example pairs, ``inputs`` / ``outputs`` of shape
    (tasks, k, H, W); every task searched on its own, all at once."""
    if mode not in MODES:
        raise ValueError(f"search mode must be one of {', '.join(MODES)}, got {mode!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    with torch.no_grad():
        mean, logvar = model.encode(inputs, outputs)  # (B, k, L)
    z, flops = mean.mean(-2), 0
    generator = torch.Generator().manual_seed(seed)
    if mode == "random" and steps:
        z, flops = _random(model, inputs, outputs, mean, logvar, steps, generator)
    elif mode == "gradient" and steps:
        z, flops = _gradient(model, inputs, outputs, z, steps, lr)
    elif mode == "both" and steps:
        z, f1 = _random(model, inputs, outputs, mean, logvar, max(1, steps // 2), generator)
        z, f2 = _gradient(model, inputs, outputs, z, steps - steps // 2, lr)
        flops = f1 + f2
    with torch.no_grad():
        ll = model.log_likelihood(inputs, outputs, z[:, None, :])
    return SearchResult(z, ll, flops)


def search(model: LPN, inputs: torch.Tensor, outputs: torch.Tensor, mode: str = "gradient",
           steps: int = 10, lr: float = 0.1, seed: int = 0) -> SearchResult:
    """A latent explaining one task's example pairs ``(inputs[i], outputs[i])``."""
    found = search_batch(model, inputs[None], outputs[None], mode, steps, lr, seed)
    return SearchResult(found.z[0], found.log_likelihood[0], found.flops)
