"""A lean, KV-cached, batched sampler over GPT-2 weights (pure torch, inference only).

The model is the GPT-2 of Radford et al. (2019), "Language Models are Unsupervised
Multitask Learners", read straight from a Hugging Face checkpoint's tensors
(``model.safetensors`` or any ``GPT2LMHeadModel.state_dict()``). Compared with
``GPT2LMHeadModel.generate`` it avoids the per-step framework overhead: the KV
cache is allocated in blocks of columns (no per-step concatenation) and decode
attention runs as plain batched matmuls over whole blocks (see :class:`KVCache`),
q/k/v come from one fused matmul with the attention scale folded in, a prompt
sampled ``n`` times is prefilled once and its cache expanded, and rows that
finish are compacted out of the batch so they stop costing compute.

Sampling choices (shared by every local engine):

* ``temperature == 0`` is greedy decoding (argmax).
* top-p (nucleus, Holtzman et al. 2020) keeps the smallest prefix of the sorted
  distribution whose mass reaches ``top_p``.
* Sampling is inverse-CDF with one uniform draw per *row* per step. With a seed,
  sample j of a prompt draws from its own stream, seeded by (``params.seed``, the
  prompt's tokens, how many earlier prompts of the call are the same, j): a
  prompt's samples do not depend on its batch-mates, the chunking or when other
  rows finish, so a result store can key them by prompt and seed alone, and a run
  resumed with other batches reproduces them. Unseeded calls share one stream.
* ``token_logprobs`` are log-probabilities of the sampled tokens under the
  *untempered* model distribution ``log_softmax(logits)`` (before temperature and
  top-p). That is the model's own belief about the text, which is what
  path-probability methods (RPC's perplexity consistency, QAlign's proposal)
  need, and it is comparable across temperatures. One entry per generated
  token, including the EOS or stop-completing token.
* ``num_tokens`` counts every generated token, including the one that completed
  EOS / a stop string; ``text`` excludes EOS and the stop string.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from testtime.backends.base import (
    BackendError,
    CancelToken,
    Completion,
    FinishCallback,
    GenerationResult,
    SamplingParams,
    Usage,
)

# HF activation names -> torch functions (GPT-2 uses "gelu_new", the tanh approximation).
CACHE_BLOCK = 64  # KV-cache growth step, in columns

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


class KVCache:
    """Keys/values ``(layers, rows, heads, capacity, head_dim)``, grown by
    ``CACHE_BLOCK`` columns when full (up to ``max_len``).

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
        self.k = torch.zeros(
            shape.n_layer, rows, shape.n_head, capacity, hd, dtype=dtype, device=device
        )
        self.v = torch.zeros_like(self.k)
        self.bias = torch.full((rows, capacity), float("-inf"), dtype=dtype, device=device)
        self.max_len = max_len

    def open_column(self, col: int) -> None:
        """Make column ``col`` attendable, growing the capacity if needed."""
        cap = self.k.shape[3]
        if col >= cap:
            grow = min(cap + CACHE_BLOCK, self.max_len) - cap
            zeros = self.k.new_zeros(*self.k.shape[:3], grow, self.k.shape[4])
            self.k = torch.cat([self.k, zeros], dim=3)
            self.v = torch.cat([self.v, zeros], dim=3)
            self.bias = torch.cat(
                [self.bias, self.bias.new_full((len(self.bias), grow), float("-inf"))], dim=1
            )
        self.bias[:, col] = 0.0

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row not in ``rows`` (finished samples stop costing compute)."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)
        self.bias = self.bias.index_select(0, rows)


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
        """One transformer block on ``x`` of shape (rows, tokens, C)."""
        L, s = self.layers[i], self.shape
        rows, toks, C = x.shape
        h = F.layer_norm(x, (C,), L.ln1_w, L.ln1_b, s.layer_norm_epsilon)
        qkv = torch.addmm(L.attn_b, h.view(-1, C), L.attn_w)
        a = attend(i, qkv.view(rows, toks, 3, s.n_head, C // s.n_head))
        x = x + torch.addmm(L.proj_b, a.reshape(-1, C), L.proj_w).view(rows, toks, C)
        h = F.layer_norm(x, (C,), L.ln2_w, L.ln2_b, s.layer_norm_epsilon).view(-1, C)
        m = torch.addmm(L.fc_proj_b, self._act(torch.addmm(L.fc_b, h, L.fc_w)), L.fc_proj_w)
        return x + m.view(rows, toks, C)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(
            x, (self.shape.n_embd,), self.lnf_w, self.lnf_b, self.shape.layer_norm_epsilon
        )
        return (x @ self.lm_head.T).float()

    def prefill(
        self, ids: torch.Tensor, pad: torch.Tensor, cache: KVCache, repeats: int
    ) -> torch.Tensor:
        """Run left-padded prompts ``ids`` (P, S) once, write their keys/values
        into cache rows expanded ``repeats`` times each, return last-token logits (P, V)."""
        P, S = ids.shape
        pos = (torch.arange(S, device=self.device) - pad[:, None]).clamp_(min=0)
        x = self.wte[ids] + self.wpe[pos]
        key_ok = torch.arange(S, device=self.device)[None, :] >= pad[:, None]  # (P, S)
        cache.bias[:, :S] = torch.where(key_ok, 0.0, float("-inf")).repeat_interleave(repeats, 0)
        mask = None
        if not bool(key_ok.all()):
            causal = torch.ones(S, S, dtype=torch.bool, device=self.device).tril()
            # Padding queries attend to themselves only, so no softmax row is empty.
            eye = torch.eye(S, dtype=torch.bool, device=self.device)
            mask = ((causal & key_ok[:, None, :]) | eye)[:, None]

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (P, H, S, D)
            cache.k[i, :, :, :S] = k.repeat_interleave(repeats, dim=0)
            cache.v[i, :, :, :S] = v.repeat_interleave(repeats, dim=0)
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, scale=1.0
            )
            return o.transpose(1, 2)

        for i in range(self.shape.n_layer):
            x = self._block(i, x, attend)
        return self._logits(x[:, -1])

    def decode(
        self, tok: torch.Tensor, pos: torch.Tensor, col: int, cache: KVCache
    ) -> torch.Tensor:
        """One step for every cached row: token ``tok`` (B,) at position ``pos`` (B,),
        written to cache column ``col``. Returns logits (B, V)."""
        x = (self.wte[tok] + self.wpe[pos])[:, None, :]
        cache.open_column(col)
        bias = cache.bias[:, None, None, :]

        def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:
            q, k, v = qkv[:, 0].unbind(1)  # each (B, H, D)
            cache.k[i, :, :, col] = k
            cache.v[i, :, :, col] = v
            # Plain matmul/softmax: for one query token torch's CPU SDPA kernel is
            # several times slower than these three batched ops.
            scores = q[:, :, None] @ cache.k[i].transpose(-1, -2)
            scores += bias
            return torch.softmax(scores, dim=-1) @ cache.v[i]  # (B, H, 1, D)

        for i in range(self.shape.n_layer):
            x = self._block(i, x, attend)
        return self._logits(x[:, 0])


def choose_tokens(
    logits: torch.Tensor, params: SamplingParams, uniforms: torch.Tensor | None
) -> torch.Tensor:
    """Next tokens for a batch of float32 ``logits`` (B, V): argmax at T = 0, else
    temperature + top-p and inverse-CDF sampling with one uniform per row."""
    if params.temperature == 0:
        return logits.argmax(-1)
    assert uniforms is not None
    probs = torch.softmax(logits / params.temperature, dim=-1)
    order = None
    if params.top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        # Keep a token while the mass *before* it is still below top_p (the first always stays).
        probs = probs * ((probs.cumsum(-1) - probs) < params.top_p)
    cdf = probs.cumsum(-1)
    # right=True never picks a zero-probability token; clamp guards float rounding at the top.
    pick = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)
    pick = pick.clamp_(max=logits.shape[-1] - 1)
    return (order.gather(-1, pick) if order is not None else pick)[:, 0]


class Detokenizer:
    """Turns token ids into text: a full decode, and an incremental one for stop
    strings that is cheap for tokenizers whose tokens decode independently
    (character-level, most word pieces) and exact for the others."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        vocab = len(tokenizer)
        self.pieces = [self.decode([i]) for i in range(vocab)]
        # Pieces are safe when concatenating them equals decoding the sequence
        # (fails for byte-level partial UTF-8 and for sentencepiece's dropped spaces).
        rng = random.Random(0)
        pairs = [(rng.randrange(vocab), rng.randrange(vocab)) for _ in range(256)]
        self.piecewise = all("\ufffd" not in p for p in self.pieces) and all(
            self.decode([a, b]) == self.pieces[a] + self.pieces[b] for a, b in pairs
        )

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def text_after(self, ids: Sequence[int], text: str) -> str:
        """Text of ``ids`` given ``text`` decoded from ``ids[:-1]``."""
        if self.piecewise:
            return text + self.pieces[ids[-1]]
        return self.decode(ids)


class RowState:
    """One sample being generated: tokens, logprobs and the stop checks.

    Shared by every local engine so that EOS / stop strings / length behave the
    same whichever engine produced the tokens."""

    __slots__ = ("ids", "logprobs", "text", "done", "stop_string", "reason")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.text = ""
        self.done = False
        self.stop_string: str | None = None
        self.reason = ""

    def push(
        self,
        token: int,
        logprob: float | None,
        *,
        eos: set[int],
        stops: Sequence[str],
        detok: Detokenizer,
        max_tokens: int,
    ) -> bool:
        """Append a token; returns True when the sample has just finished."""
        self.ids.append(token)
        if logprob is not None:
            self.logprobs.append(logprob)
        if token in eos:
            return self.finish("stop")
        if stops:
            before = len(self.text)
            self.text = detok.text_after(self.ids, self.text)
            # Only the tail can hold a new occurrence.
            tail_from = max(0, before - max(len(s) for s in stops) + 1)
            hits = [(self.text.find(s, tail_from), -len(s), s) for s in stops]
            hits = [h for h in hits if h[0] >= 0]
            if hits:
                self.stop_string = min(hits)[2]
                return self.finish("stop")
        if len(self.ids) >= max_tokens:
            return self.finish("length")
        return False

    def finish(self, reason: str) -> bool:
        self.done, self.reason = True, reason
        return True

    def completion(self, detok: Detokenizer, eos: set[int], want_logprobs: bool) -> Completion:
        ids = (
            self.ids[:-1]
            if self.ids and self.ids[-1] in eos and self.reason == "stop"
            else self.ids
        )
        text = detok.decode(ids)
        if self.stop_string is not None:
            text = text[: text.find(self.stop_string)]
        return Completion(
            text=text,
            finish_reason=self.reason,
            num_tokens=len(self.ids),
            token_logprobs=list(self.logprobs) if want_logprobs else None,
            stop_string=self.stop_string,
            token_ids=list(self.ids),
        )


def check_prompts(prompt_ids: Sequence[Sequence[int]], context: int) -> None:
    """Refuse empty prompts and prompts that leave no room in the context window."""
    for i, ids in enumerate(prompt_ids):
        if not ids:
            raise ValueError(f"prompt {i} is empty (and the tokenizer adds no BOS token)")
        if len(ids) >= context:
            raise BackendError(
                f"prompt {i} has {len(ids)} tokens; the model's context is {context} tokens"
            )


def collect(
    states: list[list[RowState]],
    detok: Detokenizer,
    eos: set[int],
    want_logprobs: bool,
    usage: Usage,
) -> GenerationResult:
    """Completions of every row (unfinished rows were cancelled); adds their tokens to usage."""
    out = []
    for row_states in states:
        comps = []
        for st in row_states:
            if not st.done:
                st.finish("cancelled")
            usage.completion_tokens += len(st.ids)
            comps.append(st.completion(detok, eos, want_logprobs))
        out.append(comps)
    return GenerationResult(out, usage)


def plan_chunks(lengths: Sequence[int], n: int, max_batch: int) -> list[tuple[list[int], int, int]]:
    """Split (prompt, sample) rows into batches of at most ``max_batch`` rows:
    ``(prompt indices, first sample, last sample + 1)``. Prompts are bucketed by
    length so little padding is spent; each chunk prefills a prompt once."""
    per = min(n, max_batch)
    group = max(1, max_batch // per)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks = []
    for j0 in range(0, n, per):
        j1 = min(n, j0 + per)
        for g in range(0, len(order), group):
            chunks.append((order[g : g + group], j0, j1))
    return chunks


def row_seeds(seed: int, prompt_ids: Sequence[Sequence[int]], n: int) -> list[list[int]]:
    """Seed of sample j of prompt i: a hash of (seed, the prompt's tokens, the number of
    earlier identical prompts in the call, j). Repeated prompts still get distinct samples."""
    seen: Counter[tuple[int, ...]] = Counter()
    out = []
    for ids in prompt_ids:
        key = tuple(ids)
        base = hashlib.sha256(json.dumps([seed, seen[key], key]).encode()).digest()
        seen[key] += 1
        out.append([
            int.from_bytes(hashlib.sha256(base + j.to_bytes(4, "big")).digest()[:8], "big") >> 1
            for j in range(n)
        ])
    return out


def _shared_draws(gen: torch.Generator, rows: int) -> Callable[[int], torch.Tensor]:
    return lambda _step: torch.rand(rows, generator=gen)


def _row_draws(seeds: Sequence[int], steps: int) -> Callable[[int], torch.Tensor]:
    """Step ``t``'s uniform of every row, each row from its own seeded stream."""
    table = torch.stack(
        [torch.rand(steps, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    return lambda step: table[:, step]


class LeanSampler:
    """Batched sampling with :class:`LeanGPT2`; see the module docstring for semantics."""

    def __init__(
        self, model: LeanGPT2, detok: Detokenizer, eos_ids: set[int], *, max_batch: int = 256
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model, self.detok, self.eos, self.max_batch = model, detok, eos_ids, max_batch

    @torch.inference_mode()
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        check_prompts(prompt_ids, self.model.shape.n_positions)
        gen = torch.Generator(device="cpu")
        gen.seed()  # unseeded calls only
        seeds = None if params.seed is None else row_seeds(params.seed, prompt_ids, params.n)
        states = [[RowState() for _ in range(params.n)] for _ in prompt_ids]
        usage = Usage(calls=1)
        for prompts, j0, j1 in plan_chunks([len(p) for p in prompt_ids], params.n, self.max_batch):
            if cancel is not None and cancel.cancelled:
                break
            usage.prompt_tokens += sum(len(prompt_ids[i]) for i in prompts)
            rows = [states[i][j] for i in prompts for j in range(j0, j1)]
            index = [(i, j) for i in prompts for j in range(j0, j1)]
            if seeds is None or params.temperature == 0:
                draw = _shared_draws(gen, len(rows))
            else:
                draw = _row_draws([seeds[i][j] for i, j in index], params.max_tokens)
            self._run_chunk(
                [prompt_ids[i] for i in prompts],
                j1 - j0,
                rows,
                index,
                params,
                draw,
                cancel,
                on_finish,
            )
        return collect(states, self.detok, self.eos, params.logprobs, usage)

    def _run_chunk(
        self,
        prompts: list[Sequence[int]],
        repeats: int,
        rows: list[RowState],
        index: list[tuple[int, int]],
        params: SamplingParams,
        draw: Callable[[int], torch.Tensor],
        cancel: CancelToken | None,
        on_finish: FinishCallback | None,
    ) -> None:
        m, s, dev = self.model, self.model.shape, self.model.device
        S = max(len(p) for p in prompts)
        T = min(S + params.max_tokens, s.n_positions)
        max_tokens = min(params.max_tokens, T - S)  # the context may cut generation short
        pad = torch.tensor([S - len(p) for p in prompts], device=dev)
        ids = torch.zeros(len(prompts), S, dtype=torch.long, device=dev)
        for r, p in enumerate(prompts):
            ids[r, S - len(p) :] = torch.tensor(p, dtype=torch.long)
        B = len(rows)
        cache = KVCache(s, B, min(S + CACHE_BLOCK, T), T, m.dtype, dev)
        logits = m.prefill(ids, pad, cache, repeats).repeat_interleave(repeats, dim=0)
        pos = (S - pad).repeat_interleave(repeats)  # next position of every row
        active = torch.arange(B, device=dev)  # chunk row of every cached row
        stops, want_lp = params.stop, params.logprobs
        for step in range(max_tokens):
            uniforms = None
            if params.temperature > 0:
                # One draw per chunk row, indexed by row, so compaction does not shift streams.
                uniforms = draw(step).to(dev)[active]
            tok = choose_tokens(logits, params, uniforms)
            lps = (
                torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0].tolist()
                if want_lp
                else None
            )
            for r, (row, t) in enumerate(zip(active.tolist(), tok.tolist(), strict=True)):
                st = rows[row]
                if st.done:  # finished earlier, not compacted out yet: result ignored
                    continue
                if (
                    st.push(
                        t,
                        lps[r] if lps else None,
                        eos=self.eos,
                        stops=stops,
                        detok=self.detok,
                        max_tokens=max_tokens,
                    )
                    and on_finish is not None
                ):
                    on_finish(*index[row], st.completion(self.detok, self.eos, want_lp))
            if step == max_tokens - 1 or (cancel is not None and cancel.cancelled):
                return
            alive = [r for r, row in enumerate(active.tolist()) if not rows[row].done]
            if not alive:
                return
            # Compacting copies the cache, so do it once >= 1/8 of the rows are dead:
            # at most 1/8 of a step's compute is spent on finished rows.
            if (len(active) - len(alive)) * 8 >= len(active):
                keep = torch.tensor(alive, dtype=torch.long, device=dev)
                active, tok, pos = active[keep], tok[keep], pos[keep]
                cache.keep(keep)
            logits = m.decode(tok, pos, S + step, cache)
            pos = pos + 1
