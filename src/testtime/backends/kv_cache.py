"""The keys/values cache the lean GPT-2 (:mod:`~testtime.backends.lean_gpt2`) runs over:
preallocated, grown in blocks of columns, rows dropped as samples finish."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from testtime.backends.lean_gpt2 import GPT2Shape

CACHE_BLOCK = 64  # KV-cache growth step, in columns


class KVCache:
    """Keys/values ``(layers, rows, heads, capacity, head_dim)`` (``k``, ``v``: views of
    one tensor, so a decode step writes both with one copy), grown by ``CACHE_BLOCK``
    columns when full (up to ``max_len``).

    Decoding attends over the *whole* capacity: matmuls over complete per-row
    blocks take torch's batched BLAS path, several times faster on CPU than over
    a growing slice of them. ``bias[r, j]`` (added to the scores) is 0 on columns
    in use and ``-inf`` on left padding and on columns not written yet (those
    hold zeros, so their scores are finite and their weight exactly 0)."""

    def __init__(
        self,
        shape: GPT2Shape,
        rows: int,
        capacity: int,
        max_len: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        hd = shape.n_embd // shape.n_head
        self.kv = torch.zeros(
            2, shape.n_layer, rows, shape.n_head, capacity, hd, dtype=dtype, device=device
        )
        self.bias = torch.full((rows, capacity), float("-inf"), dtype=dtype, device=device)
        self.max_len = max_len
        self._bind()

    def _bind(self) -> None:
        """Views of ``kv`` decoding uses, made once per (re)allocation, not per step:
        per layer, keys as (rows*heads, head_dim, capacity) and values as
        (rows*heads, capacity, head_dim)."""
        self.k, self.v = self.kv[0], self.kv[1]
        _, L, B, H, cap, D = self.kv.shape
        self.keys_t = [self.k[i].view(B * H, cap, D).transpose(1, 2) for i in range(L)]
        self.values = [self.v[i].view(B * H, cap, D) for i in range(L)]

    def open_column(self, col: int) -> None:
        """Make column ``col`` attendable, growing the capacity if needed."""
        cap = self.kv.shape[4]
        if col >= cap:
            grow = min(cap + CACHE_BLOCK, self.max_len) - cap
            zeros = self.kv.new_zeros(*self.kv.shape[:4], grow, self.kv.shape[5])
            self.kv = torch.cat([self.kv, zeros], dim=4)
            self.bias = torch.cat(
                [self.bias, self.bias.new_full((len(self.bias), grow), float("-inf"))], dim=1
            )
            self._bind()
        self.bias[:, col] = 0.0

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row not in ``rows`` (finished samples stop costing compute)."""
        self.kv = self.kv.index_select(2, rows)
        self.bias = self.bias.index_select(0, rows)
        self._bind()
