"""Sampling semantics shared by every local engine (see :mod:`testtime.backends.sampler`):
token choice, detokenization, per-sample stop checks and chunking (per-sample seeds:
:mod:`~testtime.backends.seeds`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from testtime.backends.base import (
    BackendError,
    Completion,
    GenerationResult,
    SamplingParams,
    Usage,
)


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


def shared_draws(gen: torch.Generator, rows: int) -> Callable[[int], torch.Tensor]:
    return lambda _step: torch.rand(rows, generator=gen)


def row_draws(seeds: Sequence[int], steps: int) -> Callable[[int], torch.Tensor]:
    """Step ``t``'s uniform of every row, each row from its own seeded stream."""
    table = torch.stack(
        [torch.rand(steps, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    return lambda step: table[:, step]
