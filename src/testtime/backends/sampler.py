"""A lean, KV-cached, batched sampler over GPT-2 weights (pure torch, inference only).

The model runs on :class:`~testtime.backends.lean_gpt2.LeanGPT2`. A prompt sampled ``n``
times is prefilled once and its cache expanded, rows that finish are compacted out of
the batch so they stop costing compute, and with a :class:`~testtime.backends.prefix_cache.PrefixCache`
a prompt that extends a sequence seen before (a search's partial solution, a
continued text) prefills only its new tokens.

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

from collections.abc import Callable, Sequence

import torch

from testtime.backends.base import (
    CancelToken,
    FinishCallback,
    GenerationResult,
    SamplingParams,
    Usage,
)
from testtime.backends.decoding import (
    Detokenizer,
    RowState,
    check_prompts,
    choose_tokens,
    collect,
    plan_chunks,
    row_draws,
    shared_draws,
)
from testtime.backends.kv_cache import CACHE_BLOCK, KVCache
from testtime.backends.lean_gpt2 import GPT2Shape, LeanGPT2
from testtime.backends.prefix_cache import PrefixCache, reuse_prefixes
from testtime.backends.seeds import row_seeds

__all__ = [
    "CACHE_BLOCK", "Detokenizer", "GPT2Shape", "KVCache", "LeanGPT2", "LeanSampler", "RowState",
    "check_prompts", "choose_tokens", "collect", "plan_chunks",
]


class LeanSampler:
    """Batched sampling with :class:`LeanGPT2`; see the module docstring for semantics."""

    def __init__(
        self,
        model: LeanGPT2,
        detok: Detokenizer,
        eos_ids: set[int],
        *,
        max_batch: int = 256,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model, self.detok, self.eos, self.max_batch = model, detok, eos_ids, max_batch
        self.prefix_cache = prefix_cache

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
            rows = [states[i][j] for i in prompts for j in range(j0, j1)]
            index = [(i, j) for i in prompts for j in range(j0, j1)]
            if seeds is None or params.temperature == 0:
                draw = shared_draws(gen, len(rows))
            else:
                draw = row_draws([seeds[i][j] for i, j in index], params.max_tokens)
            chunk = [prompt_ids[i] for i in prompts]
            prefilled = self._run_chunk(
                chunk,
                j1 - j0,
                rows,
                index,
                params,
                draw,
                cancel,
                on_finish,
            )
            usage.prompt_tokens += prefilled
            usage.cached_tokens += sum(map(len, chunk)) - prefilled
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
    ) -> int:
        """Sample every row of one chunk; returns the prompt tokens really prefilled."""
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
        start, _ = reuse_prefixes(self.prefix_cache, prompts, S, repeats, cache)
        prefilled = sum(S - max(start, S - len(p)) for p in prompts)
        logits = m.prefill(ids, pad, cache, repeats, start).repeat_interleave(repeats, dim=0)
        pos = (S - pad).repeat_interleave(repeats)  # next position of every row
        active = torch.arange(B, device=dev)  # chunk row of every cached row
        live = list(range(B))  # the same as a list (no tensor round trip per step)
        stops, want_lp = params.stop, params.logprobs
        for step in range(max_tokens):
            uniforms = None
            if params.temperature > 0:
                # One draw per chunk row, indexed by row, so compaction does not shift streams.
                uniforms = draw(step).to(dev)
                if len(live) < B:
                    uniforms = uniforms[active]
            tok = choose_tokens(logits, params, uniforms)
            lps = (
                torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0].tolist()
                if want_lp
                else None
            )
            for r, (row, t) in enumerate(zip(live, tok.tolist(), strict=True)):
                st = rows[row]
                if st.done:  # finished earlier, not compacted out yet: result ignored
                    continue
                lp = lps[r] if lps else None
                if st.push(
                    t, lp, eos=self.eos, stops=stops, detok=self.detok, max_tokens=max_tokens
                ):
                    if self.prefix_cache is not None:
                        first = S - len(prompts[row // repeats])
                        self.prefix_cache.store(
                            [*prompts[row // repeats], *st.ids[:-1]],
                            cache.k[:, r, :, first : S + step].clone(),
                            cache.v[:, r, :, first : S + step].clone(),
                        )
                    if on_finish is not None:
                        on_finish(*index[row], st.completion(self.detok, self.eos, want_lp))
            if step == max_tokens - 1 or (cancel is not None and cancel.cancelled):
                return prefilled
            alive = [r for r, row in enumerate(live) if not rows[row].done]
            if not alive:
                return prefilled
            # Compacting copies the cache, so do it once >= 1/8 of the rows are dead:
            # at most 1/8 of a step's compute is spent on finished rows.
            if (len(active) - len(alive)) * 8 >= len(active):
                keep = torch.tensor(alive, dtype=torch.long, device=dev)
                active, tok, pos = active[keep], tok[keep], pos[keep]
                live = [live[r] for r in alive]
                cache.keep(keep)
            logits = m.decode(tok, pos, S + step, cache)
            pos = pos + 1
        return prefilled
