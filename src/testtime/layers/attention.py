"""Causal softmax attention, full or over a sliding window, with rotary positions.

The full form is the attention baseline of the test-time-training comparisons; the
windowed form is LaCT's local companion (Zhang et al. 2025, "Test-Time Training Done
Right", §4: sliding-window attention handles the tokens inside the current chunk, which
the fast weights have not been updated on yet).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rotary(x: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """RoPE (Su et al. 2021) on ``x`` of shape (B, H, T, d), d even; positions 0..T-1."""
    t, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"rotary positions need an even head dimension, got {d}")
    freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angle = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * freq
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None
) -> torch.Tensor:
    """Softmax attention of (B, H, T, d) tensors; token t sees t-window+1..t (all of 0..t
    when ``window`` is None). Rotary positions are applied to q and k here."""
    if window is not None and window < 1:
        raise ValueError(f"the attention window must be >= 1 token, got {window}")
    q, k = rotary(q), rotary(k)
    t = q.shape[-2]
    if window is None or window >= t:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    pos = torch.arange(t, device=q.device)
    gap = pos[:, None] - pos[None, :]
    mask = (gap >= 0) & (gap < window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Attention(nn.Module):
    """Multi-head causal attention (the baseline mixer): q, k, v, o projections."""

    def __init__(self, dim: int, heads: int, window: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = causal_attention(q, k, v, self.window)
        return self.o(out.transpose(1, 2).reshape(b, t, d))
