"""A minimal RWKV-7 "Goose" language model (Peng et al. 2025, arXiv 2503.14456).

Time mixing: token shift (``x + (x_{t-1} - x) * mu`` per branch), receptance ``r``, decay
``w`` (a tanh LoRA; ``d = exp(-exp(w))`` with ``w = -softplus(-(w0 + lora)) - 0.5``),
key ``k``, value ``v`` (layers after the first mix towards the first layer's value by a
sigmoid LoRA, the "value residual"), in-context learning rate ``a`` (sigmoid LoRA),
output gate ``g``, removal key ``kappa = normalise(k * k_k)``, replacement key
``k * (1 + (a - 1) k_a)``; the state follows the generalised delta rule
(:mod:`testtime.layers.wkv7`), then per-head GroupNorm, the ``r_k`` bonus
``((r * k * r_k).sum) v`` and the gate. Channel mixing: token shift, ``relu(W_k x)^2``,
``W_v``. Parameter names follow public RWKV-7 (x070) checkpoints (``emb``,
``blocks.i.att.{x_r,...,w0,w1,w2,a0,...,k_k,k_a,r_k,receptance,key,value,output,ln_x}``,
``blocks.i.ffn.{x_k,key,value}``, ``ln_out``, ``head``), so their state dicts load into a
model of the same shape. A :class:`LayerCache` per layer (``model.new_cache(batch)``) carries
the token-shift inputs and the wkv map (P, D) between calls, so decoding continues a
sequence one token at a time (chunked form). Deviations: token-shift states start at
zero; no CUDA kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from testtime.layers.wkv7 import read_matrix, wkv_chunked, wkv_recurrent

# The initial wkv state of a layer: a matrix (H, N, N) / (B, H, N, N), or a read-out of the
# propagated queries (B, H, T, N) -> (B, H, T, N) (chunked form only).
InitialState = torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None


@dataclass
class RWKV7Config:
    vocab_size: int
    dim: int = 64
    layers: int = 2
    head_size: int = 16
    ffn_mult: int = 4
    lora_decay: int = 16
    lora_a: int = 16
    lora_v: int = 8
    lora_gate: int = 16

    def __post_init__(self) -> None:
        if self.dim % self.head_size:
            raise ValueError(f"dim {self.dim} is not divisible by head_size {self.head_size}")
        if min(self.vocab_size, self.dim, self.layers, self.head_size, self.ffn_mult) < 1:
            raise ValueError("vocab_size, dim, layers, head_size and ffn_mult must be >= 1")

    @property
    def heads(self) -> int:
        return self.dim // self.head_size


def token_shift(x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
    """``x_{t-1} - x_t``; before the first token ``prev`` (B, C), or zeros."""
    if prev is None:
        return F.pad(x, (0, 0, 1, -1)) - x
    return torch.cat([prev.unsqueeze(1), x[:, :-1]], dim=1) - x


@dataclass
class LayerCache:
    """What a layer carries between calls: last inputs of both token shifts and the
    wkv map ``S_t = S_0 P + D`` of the tokens so far (updated in place)."""

    att_x: torch.Tensor
    ffn_x: torch.Tensor
    wkv: tuple[torch.Tensor, torch.Tensor] = field(default=None)  # type: ignore[assignment]


def _lora(rows: int, rank: int, cols: int, scale: float) -> tuple[nn.Parameter, nn.Parameter]:
    return nn.Parameter(torch.zeros(rows, rank)), nn.Parameter(torch.randn(rank, cols) * scale)


class TimeMix(nn.Module):
    def __init__(self, cfg: RWKV7Config, layer: int) -> None:
        super().__init__()
        c, h, n = cfg.dim, cfg.heads, cfg.head_size
        self.layer, self.heads, self.n = layer, h, n
        ramp = torch.arange(c) / max(1, c - 1)
        for i, name in enumerate(("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")):
            setattr(self, name, nn.Parameter((1 - ramp ** (0.5 + i / 6)).view(1, 1, c)))
        self.w0 = nn.Parameter((-7 + 6.5 * ramp ** 0.5).view(1, 1, c))
        self.w1, self.w2 = _lora(c, cfg.lora_decay, c, 0.1)
        self.a0 = nn.Parameter(torch.zeros(1, 1, c))
        self.a1, self.a2 = _lora(c, cfg.lora_a, c, 0.1)
        if layer > 0:
            self.v0 = nn.Parameter(torch.ones(1, 1, c))
            self.v1, self.v2 = _lora(c, cfg.lora_v, c, 0.1)
        self.g1, self.g2 = _lora(c, cfg.lora_gate, c, 0.1)
        self.k_k = nn.Parameter(torch.full((1, 1, c), 0.85))
        self.k_a = nn.Parameter(torch.ones(1, 1, c))
        self.r_k = nn.Parameter(torch.randn(h, n) * 0.1)
        self.receptance, self.key, self.value, self.output = (
            nn.Linear(c, c, bias=False) for _ in range(4)
        )
        nn.init.zeros_(self.output.weight)
        self.ln_x = nn.GroupNorm(h, c, eps=64e-5)

    def forward(
        self, x: torch.Tensor, v_first: torch.Tensor | None, init: InitialState, mode: str, chunk: int,
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, c = x.shape
        xx = token_shift(x, None if cache is None else cache.att_x)
        xr, xw, xk, xv, xa, xg = (x + xx * getattr(self, m) for m in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"))
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        w = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5
        if self.layer == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        heads = lambda z: z.view(b, t, self.heads, self.n).transpose(1, 2)  # noqa: E731
        kappa = F.normalize(heads(k * self.k_k), dim=-1)
        k = k * (1 + (a - 1) * self.k_a)
        args = (heads(r), heads(torch.exp(-torch.exp(w))), heads(k), heads(v), kappa, heads(a))
        out = self.wkv(args, init, mode, chunk, cache)
        if cache is not None:
            cache.att_x = x[:, -1]
        out = self.ln_x(out.transpose(1, 2).reshape(b * t, c)).view(b, t, c)
        bonus = (heads(r) * heads(k) * self.r_k.unsqueeze(1)).sum(-1, keepdim=True) * heads(v)
        out = out + bonus.transpose(1, 2).reshape(b, t, c)
        return self.output(out * g), v_first

    def wkv(self, args: tuple[torch.Tensor, ...], init: InitialState, mode: str, chunk: int,
            cache: LayerCache | None) -> torch.Tensor:
        b = args[0].shape[0]
        if mode == "recurrent":
            if cache is not None:
                raise ValueError("a cache continues the chunked form only")
            if callable(init) and not isinstance(init, torch.Tensor):
                raise ValueError("the recurrent form takes an initial state matrix, not a read-out")
            s0 = torch.zeros(b, self.heads, self.n, self.n, dtype=args[0].dtype) if init is None else init
            if s0.dim() == 3:
                s0 = s0.unsqueeze(0).expand(b, *s0.shape)
            return wkv_recurrent(*args, s0)[0]
        if mode != "chunked":
            raise ValueError(f"mode must be 'chunked' or 'recurrent', got {mode!r}")
        prop = wkv_chunked(*args, chunk=chunk, carry=None if cache is None else cache.wkv)
        if cache is not None:
            cache.wkv = (prop.p, prop.d)
        if init is None:
            return prop.data
        readout = init if callable(init) and not isinstance(init, torch.Tensor) else (
            lambda q: read_matrix(init, q))
        return prop.data + readout(prop.query)


class ChannelMix(nn.Module):
    def __init__(self, cfg: RWKV7Config) -> None:
        super().__init__()
        self.x_k = nn.Parameter(torch.full((1, 1, cfg.dim), 0.5))
        self.key = nn.Linear(cfg.dim, cfg.ffn_mult * cfg.dim, bias=False)
        self.value = nn.Linear(cfg.ffn_mult * cfg.dim, cfg.dim, bias=False)
        nn.init.zeros_(self.value.weight)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        k = x + token_shift(x, None if cache is None else cache.ffn_x) * self.x_k
        if cache is not None:
            cache.ffn_x = x[:, -1]
        return self.value(torch.relu(self.key(k)) ** 2)


class Block(nn.Module):
    def __init__(self, cfg: RWKV7Config, layer: int) -> None:
        super().__init__()
        if layer == 0:
            self.ln0 = nn.LayerNorm(cfg.dim)
        self.ln1, self.ln2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.att, self.ffn = TimeMix(cfg, layer), ChannelMix(cfg)


class RWKV7(nn.Module):
    """``model(tokens, init=None, mode="chunked")`` -> logits (B, T, vocab). ``init`` holds
    one :data:`InitialState` per layer (None: zero states)."""

    def __init__(self, cfg: RWKV7Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        nn.init.uniform_(self.emb.weight, -1e-4 * math.sqrt(cfg.dim), 1e-4 * math.sqrt(cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.layers))
        self.ln_out = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def forward(
        self, tokens: torch.Tensor, init: Sequence[InitialState] | None = None,
        mode: str = "chunked", chunk: int = 16, cache: list[LayerCache] | None = None,
    ) -> torch.Tensor:
        if init is not None and len(init) != self.cfg.layers:
            raise ValueError(f"init has {len(init)} entries, the model has {self.cfg.layers} layers")
        x, v_first = self.emb(tokens), None
        for i, block in enumerate(self.blocks):
            if i == 0:
                x = block.ln0(x)
            c = None if cache is None else cache[i]
            dx, v_first = block.att(block.ln1(x), v_first, None if init is None else init[i], mode, chunk, c)
            x = x + dx
            x = x + block.ffn(block.ln2(x), c)
        return self.head(self.ln_out(x))

    def new_cache(self, batch: int) -> list[LayerCache]:
        """Empty caches (no tokens seen yet) for ``forward(..., cache=...)``."""
        z = self.emb.weight.new_zeros(batch, self.cfg.dim)
        return [LayerCache(z, z) for _ in range(self.cfg.layers)]

    def state_shape(self) -> tuple[int, int, int]:
        """Shape of one layer's wkv state: (heads, head_size, head_size)."""
        return self.cfg.heads, self.cfg.head_size, self.cfg.head_size
