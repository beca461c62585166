"""GPT-2 forward passes for inference over a preallocated KV cache (pure torch).

The model is the GPT-2 of Radford et al. (2019), "Language Models are Unsupervised
Multitask Learners", read straight from a Hugging Face checkpoint's tensors
(``model.safetensors`` or any ``GPT2LMHeadModel.state_dict()``). Compared with
``GPT2LMHeadModel`` it avoids the per-step framework overhead: the KV cache is
allocated in blocks of columns (no per-step concatenation) and decode attention runs
as plain batched matmuls over whole blocks (:class:`~testtime.backends.kv_cache.KVCache`),
q/k/v come from one fused matmul with the attention scale folded in, and residual adds
ride on the matmuls (a batch-1 decode step is ~58 torch ops). :meth:`LeanGPT2.prefill`
can start at a column whose earlier keys/values are already in the cache (prefix reuse).
Deviation: none in the maths; float rounding differs from HF's in the last bits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from testtime.backends.kv_cache import KVCache

# HF activation names -> torch functions (GPT-2 uses "gelu_new", the tanh approximation).
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


@dataclass(frozen=True)
class GPT2Shape:
    """The parts of a ``GPT2Config`` the sampler needs."""

    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int
    layer_norm_epsilon: float = 1e-5
    activation_function: str = "gelu_new"
    scale_attn_by_inverse_layer_idx: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GPT2Shape:
        if config.get("model_type", "gpt2") != "gpt2":
            raise ValueError(f"not a GPT-2 config (model_type={config.get('model_type')!r})")
        act = config.get("activation_function", "gelu_new")
        if act not in _ACTIVATIONS:
            raise ValueError(f"unsupported activation {act!r}; known: {sorted(_ACTIVATIONS)}")
        if not config.get("scale_attn_weights", True):
            raise ValueError("GPT-2 configs with scale_attn_weights=False are not supported")
        return cls(
            n_layer=int(config["n_layer"]),
            n_head=int(config["n_head"]),
            n_embd=int(config["n_embd"]),
            n_positions=int(config["n_positions"]),
            vocab_size=int(config["vocab_size"]),
            layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-5)),
            activation_function=act,
            scale_attn_by_inverse_layer_idx=bool(
                config.get("scale_attn_by_inverse_layer_idx", False)
            ),
        )


@dataclass
class _Layer:
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    attn_w: torch.Tensor  # (C, 3C): HF Conv1D layout, y = x @ W + b — q, k, v fused
    attn_b: torch.Tensor
    proj_w: torch.Tensor
    proj_b: torch.Tensor
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor
    fc_w: torch.Tensor
    fc_b: torch.Tensor
    fc_proj_w: torch.Tensor
    fc_proj_b: torch.Tensor


class LeanGPT2:
    """Inference-only GPT-2 forward passes over a preallocated :class:`KVCache`."""

    def __init__(
        self,
        shape: GPT2Shape,
        state_dict: Mapping[str, torch.Tensor],
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        self.shape = shape
        self.dtype, self.device = dtype, torch.device(device)
        sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()}

        def get(name: str) -> torch.Tensor:
            if name not in sd:
                raise ValueError(f"GPT-2 weights are missing tensor {name!r}")
            return sd[name].detach().to(device=self.device, dtype=dtype).contiguous()

        self.wte = get("wte.weight")
        self.wpe = get("wpe.weight")
        # GPT-2 ties the LM head to the token embedding; honour an untied head if saved.
        self.lm_head = self.wte
        if "lm_head.weight" in sd and not torch.equal(sd["lm_head.weight"], sd["wte.weight"]):
            self.lm_head = get("lm_head.weight")  # an untied head (a full state_dict repeats it)
        self.lnf_w, self.lnf_b = get("ln_f.weight"), get("ln_f.bias")
        self.layers = []
        for i in range(shape.n_layer):
            p = f"h.{i}."
            self.layers.append(
                _Layer(
                    *(get(p + n) for n in ("ln_1.weight", "ln_1.bias")),
                    *(get(p + n) for n in ("attn.c_attn.weight", "attn.c_attn.bias")),
                    *(get(p + n) for n in ("attn.c_proj.weight", "attn.c_proj.bias")),
                    *(get(p + n) for n in ("ln_2.weight", "ln_2.bias")),
                    *(get(p + n) for n in ("mlp.c_fc.weight", "mlp.c_fc.bias")),
                    *(get(p + n) for n in ("mlp.c_proj.weight", "mlp.c_proj.bias")),
                )
            )
        if self.wte.shape != (shape.vocab_size, shape.n_embd):
            raise ValueError(
                f"wte has shape {tuple(self.wte.shape)}, config says "
                f"({shape.vocab_size}, {shape.n_embd})"
            )
        self._act = _ACTIVATIONS[shape.activation_function]
        self._head_t = self.lm_head.T.contiguous()  # (C, V): one plain matmul per step
        # Fold the attention scale (1/sqrt(d), optionally also 1/(layer_idx+1), an HF
        # option) into the query projection: one multiply fewer per layer and step.
        C, hd = shape.n_embd, shape.n_embd // shape.n_head
        for i, layer in enumerate(self.layers):
            scale = 1.0 / math.sqrt(hd) / ((i + 1) if shape.scale_attn_by_inverse_layer_idx else 1)
            layer.attn_w = layer.attn_w.clone()
            layer.attn_b = layer.attn_b.clone()
            layer.attn_w[:, :C] *= scale
            layer.attn_b[:C] *= scale

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
    ) -> LeanGPT2:
        """Load ``config.json`` + ``model.safetensors`` from a HF GPT-2 directory."""
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        weights = model_dir / "model.safetensors"
        if not weights.exists():
            raise FileNotFoundError(f"{weights} not found (the lean engine reads safetensors)")
        from safetensors.torch import load_file

        return cls(
            GPT2Shape.from_config(config), load_file(str(weights)), dtype=dtype, device=device
        )

    @property
    def num_parameters(self) -> int:
        tensors = [self.wte, self.wpe, self.lnf_w, self.lnf_b]
        tensors += [t for layer in self.layers for t in vars(layer).values()]
        if self.lm_head is not self.wte:
            tensors.append(self.lm_head)
        return sum(t.numel() for t in tensors)

    def _block(
        self, i: int, x: torch.Tensor, attend: Callable[[int, torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """One transformer block on ``x`` of shape (tokens, C); ``attend`` maps the
        fused q/k/v (tokens, 3C) to the attention output (tokens, C)."""
        L, eps, C = self.layers[i], self.shape.layer_norm_epsilon, self.shape.n_embd
        # torch.layer_norm, not F.layer_norm: skips a Python wrapper per call (batch 1
        # decoding is dispatch-bound: every op saved counts), and the residual adds
        # ride on addmm (x + a @ W), the bias added in place.
        h = torch.layer_norm(x, (C,), L.ln1_w, L.ln1_b, eps)
        a = attend(i, torch.addmm(L.attn_b, h, L.attn_w))
        x = torch.addmm(x, a, L.proj_w).add_(L.proj_b)
        h = torch.layer_norm(x, (C,), L.ln2_w, L.ln2_b, eps)
        m = self._act(torch.addmm(L.fc_b, h, L.fc_w))
        return torch.addmm(x, m, L.fc_proj_w).add_(L.fc_proj_b)

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shape
        return torch.layer_norm(x, (s.n_embd,), self.lnf_w, self.lnf_b, s.layer_norm_epsilon)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self._final_norm(x), self._head_t).float()

    def prefill(
        self,
        ids: torch.Tensor,
        pad: torch.Tensor,
        cache: KVCache,
        repeats: int,
        start: int = 0,
    ) -> torch.Tensor:
        """Run left-padded prompts ``ids`` (P, S) once, write their keys/values
        into cache rows expanded ``repeats`` times each, return last-token logits (P, V).

        ``start > 0``: the keys/values of columns ``[0, start)`` are already in the cache
        (a reused prefix, the same for every repeat of a prompt); only columns
        ``[start, S)`` are computed, attending to the cached ones."""
        return self._logits(self._prefill(ids, pad, cache, repeats, start)[:, -1])

    def prefill_states(
        self, ids: torch.Tensor, pad: torch.Tensor, cache: KVCache, start: int = 0
    ) -> torch.Tensor:
        """As :meth:`prefill` (one repeat), returning the final (normed) hidden states of
        every computed column, (P, S - start, C): what a token-classification head reads."""
        return self._final_norm(self._prefill(ids, pad, cache, 1, start))

    def _prefill(
        self, ids: torch.Tensor, pad: torch.Tensor, cache: KVCache, repeats: int, start: int
    ) -> torch.Tensor:
        P, S = ids.shape
        W, C, H = S - start, self.shape.n_embd, self.shape.n_head
        cols = torch.arange(S, device=self.device)
        pos = (cols[start:] - pad[:, None]).clamp_(min=0)
        x = (self.wte[ids[:, start:]] + self.wpe[pos]).view(P * W, C)
        key_ok = cols[None, :] >= pad[:, None]  # (P, S)
        cache.bias[:, :S] = torch.where(key_ok, 0.0, float("-inf")).repeat_interleave(repeats, 0)
        mask = None
        if start > 0 or not bool(key_ok.all()):
            causal = cols[None, :] <= cols[start:, None]  # (W, S): query col >= key col
            # Padding queries attend to themselves only, so no softmax row is empty.
            eye = cols[None, :] == cols[start:, None]
            mask = ((causal & key_ok[:, None, :]) | eye)[:, None]

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            qkv = qkv.view(P, W, 3, H, C // H)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (P, H, W, D)
            cache.k[i, :, :, start:S] = k.repeat_interleave(repeats, dim=0)
            cache.v[i, :, :, start:S] = v.repeat_interleave(repeats, dim=0)
            if start > 0:  # attend to the whole prefix: the first repeat of every prompt
                k, v = cache.k[i, ::repeats, :, :S], cache.v[i, ::repeats, :, :S]
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, scale=1.0
            )
            return o.transpose(1, 2).reshape(P * W, C)

        for i in range(self.shape.n_layer):
            x = self._block(i, x, attend)
        return x.view(P, W, C)

    def decode(
        self, tok: torch.Tensor, pos: torch.Tensor, col: int, cache: KVCache
    ) -> torch.Tensor:
        """One step for every cached row: token ``tok`` (B,) at position ``pos`` (B,),
        written to cache column ``col``. Returns logits (B, V)."""
        x = torch.embedding(self.wte, tok) + torch.embedding(self.wpe, pos)  # (B, C)
        cache.open_column(col)
        B, C, H = len(tok), self.shape.n_embd, self.shape.n_head
        cap = cache.kv.shape[4]
        # (B*H, 1, cap), shared by every layer; baddbmm adds it to the scores in one op
        # (one row's (1, cap) broadcasts as it is).
        bias = cache.bias if B == 1 else cache.bias[:, None, :].expand(B, H, cap).reshape(B * H, 1, cap)
        column = cache.kv[:, :, :, :, col]  # (2, layers, B, H, D): this step's keys/values

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            column[:, i] = qkv[:, C:].view(B, 2, H, C // H).transpose(0, 1)  # k and v at once
            # Plain batched matmuls: for one query token torch's CPU SDPA kernel is
            # several times slower.
            scores = torch.baddbmm(bias, qkv[:, :C].reshape(B * H, 1, C // H), cache.keys_t[i])
            return torch.bmm(torch.softmax(scores, dim=-1), cache.values[i]).view(B, C)

        for i in range(self.shape.n_layer):
            x = self._block(i, x, attend)
        return self._logits(x)
