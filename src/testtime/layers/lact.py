"""LaCT: large-chunk test-time training (Zhang et al. 2025, "Test-Time Training Done
Right", arXiv 2505.23884).

Each head owns fast weights ``W = (W1, W2, W3)`` of a SwiGLU MLP
``f_W(x) = W2 (silu(W1 x) * (W3 x))``. The sequence is cut into chunks of ``chunk``
tokens; for every chunk the layer first *applies* the current fast weights to the
chunk's queries, then *updates* them on the chunk's keys/values (apply-then-update,
causal): the loss is the negative dot product ``-<f_W(k_i), v_i>`` weighted by
per-token, per-head learning rates ``eta_i`` (one per fast-weight matrix, from a
softplus over a linear map of the token), the summed gradient goes through a pluggable
online optimiser (:mod:`testtime.layers.fast_optim`: sgd, momentum, muon), and each
weight's rows are renormalised to their initial L2 norms (the paper's weight
normalisation, in place of weight decay). A sliding-window attention over the same
q, k, v covers the current chunk, whose tokens the fast weights have not seen yet; the
fast-weight output is RMS-normalised per head, scaled and added to it.

Deviations: q and k are L2-normalised per head (as in the paper's code), no silu on
them; the gradients are written out by hand (a chunk is one batched matmul each) and
checked against autograd per token in tests/layers/test_lact.py; the last chunk's
update is skipped (nothing reads it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from testtime.layers.attention import causal_attention
from testtime.layers.fast_optim import FAST_OPTIMIZERS, FastOptimizer


@dataclass
class LaCTConfig:
    dim: int = 64
    heads: int = 2
    chunk: int = 64  # tokens per fast-weight update
    window: int = 64  # sliding-window attention span (0: no attention companion)
    fast_mult: int = 2  # hidden width of each head's fast SwiGLU, in head dims
    optimizer: str = "muon"  # sgd, momentum, muon
    lr_init: float = 0.05  # initial per-token learning rate (softplus bias)

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        for name in ("chunk", "fast_mult", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0 (0: no attention), got {self.window}")
        FAST_OPTIMIZERS.get(self.optimizer)  # a clear error for an unknown name


def swiglu(w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``f_W(x)`` for x (B, H, n, d), w1/w3 (B, H, m, d), w2 (B, H, d, m)."""
    return (F.silu(x @ w1.transpose(-1, -2)) * (x @ w3.transpose(-1, -2))) @ w2.transpose(-1, -2)


def swiglu_grads(
    w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor,
    k: torch.Tensor, v: torch.Tensor, lr: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``sum_i -eta_i <f_W(k_i), v_i>`` for W1, W2, W3, where ``lr`` (B, H, n, 3)
    holds each token's eta for the three weights respectively."""
    h1, h3 = k @ w1.transpose(-1, -2), k @ w3.transpose(-1, -2)  # (B, H, n, m)
    act = F.silu(h1)
    du = -(v @ w2)  # d loss / d (act * h3), unweighted
    sig = torch.sigmoid(h1)
    dh1 = du * h3 * sig * (1 + h1 * (1 - sig))  # silu'(h) = s (1 + h (1 - s))
    dh3 = du * act
    g1 = (dh1 * lr[..., 0:1]).transpose(-1, -2) @ k
    g2 = -(v * lr[..., 1:2]).transpose(-1, -2) @ (act * h3)
    g3 = (dh3 * lr[..., 2:3]).transpose(-1, -2) @ k
    return g1, g2, g3


def renormalise(w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rows of ``w`` rescaled to the L2 norms ``target`` (the initial fast weights')."""
    return w * (target / w.norm(dim=-1, keepdim=True).clamp_min(1e-6))


class LaCTLayer(nn.Module):
    """Token mixer (B, T, dim) -> (B, T, dim): fast-weight SwiGLU + sliding-window attention."""

    def __init__(self, cfg: LaCTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, d = cfg.heads, cfg.dim // cfg.heads
        m = d * cfg.fast_mult
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.lr = nn.Linear(cfg.dim, 3 * h)
        nn.init.zeros_(self.lr.weight)
        nn.init.constant_(self.lr.bias, math.log(math.expm1(cfg.lr_init)))
        self.w1 = nn.Parameter(torch.randn(h, m, d) / math.sqrt(d))
        self.w3 = nn.Parameter(torch.randn(h, m, d) / math.sqrt(d))
        self.w2 = nn.Parameter(torch.randn(h, d, m) / math.sqrt(m))
        self.ttt_gain = nn.Parameter(torch.ones(h, 1, d))
        self.o = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.optimizers: list[FastOptimizer] = [FAST_OPTIMIZERS.create(cfg.optimizer) for _ in range(3)]

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k, v (B, H, T, d) and learning rates (B, H, T, 3) of the tokens."""
        b, t, _ = x.shape
        h = self.cfg.heads
        q, k, v = self.qkv(x).view(b, t, 3, h, -1).permute(2, 0, 3, 1, 4)
        lr = F.softplus(self.lr(x)).view(b, t, h, 3).transpose(1, 2)
        return q, k, v, lr

    def fast_weights(self, batch: int) -> list[torch.Tensor]:
        return [w.unsqueeze(0).expand(batch, *w.shape) for w in (self.w1, self.w2, self.w3)]

    def ttt(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """The fast-weight path: (B, H, T, d) outputs, chunk by chunk, apply then update."""
        qn, kn = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        weights = self.fast_weights(q.shape[0])
        targets = [w.detach().norm(dim=-1, keepdim=True) for w in weights]
        states = [opt.init_state(w) for opt, w in zip(self.optimizers, weights, strict=True)]
        outs, t, c = [], q.shape[2], self.cfg.chunk
        for start in range(0, t, c):
            sl = slice(start, start + c)
            outs.append(swiglu(*weights, qn[:, :, sl]))
            if start + c >= t:
                break
            grads = swiglu_grads(*weights, kn[:, :, sl], v[:, :, sl], lr[:, :, sl])
            scale = lr[:, :, sl].mean(dim=2)  # (B, H, 3)
            new = []
            for j, (w, g, opt, target) in enumerate(
                zip(weights, grads, self.optimizers, targets, strict=True)
            ):
                step, states[j] = opt.step(g, states[j], scale[..., j])
                new.append(renormalise(w - step, target))
            weights = new
        return torch.cat(outs, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, dim = x.shape
        q, k, v, lr = self.split(x)
        out = F.rms_norm(self.ttt(q, k, v, lr), (dim // self.cfg.heads,)) * self.ttt_gain
        if self.cfg.window:
            out = out + causal_attention(q, k, v, self.cfg.window)
        return self.o(out.transpose(1, 2).reshape(b, t, dim))

    def flops_per_token(self, seq_len: int) -> float:
        """Multiply-adds x2 of one forward token: projections, fast-weight apply (1 SwiGLU)
        and update (~2 SwiGLU-sized backward matmuls + 3 outer-product sums), window
        attention. Newton–Schulz and norms are not counted (O(d^3) per chunk, amortised)."""
        cfg = self.cfg
        d, h = cfg.dim // cfg.heads, cfg.heads
        m = d * cfg.fast_mult
        proj = 2 * cfg.dim * (4 * cfg.dim + 3 * h)
        swiglu_flops = 2 * h * 3 * m * d
        update = 2 * swiglu_flops if seq_len > cfg.chunk else 0
        attn = 4 * cfg.dim * min(cfg.window, seq_len) if cfg.window else 0
        return float(proj + swiglu_flops + update + attn)
