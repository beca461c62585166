"""A minimal batched, KV-cached sampler for the embedded GPT-2 models, and the
unbiased pass@k estimator; used to validate checkpoints and to benchmark quality.
(The serving path is :mod:`testtime.backends`; this one has no extras.)"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from math import comb

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 320,
    generator: torch.Generator | None = None,
    batch_size: int = 512,
) -> list[list[str]]:
    """``n`` continuations per prompt (up to EOS, which is dropped); temperature 0 is greedy.
    A continuation also stops where its sequence reaches the model's context window."""
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    for start in range(0, len(flat), batch_size):
        texts += _sample_batch(
            model, tokenizer, flat[start : start + batch_size], temperature, max_new_tokens, generator
        )
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


def _sample_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    temperature: float,
    max_new_tokens: int,
    generator: torch.Generator | None,
) -> list[str]:
    encoded = [tokenizer(p).input_ids for p in prompts]
    width = max(map(len, encoded))
    pad = tokenizer.pad_token_id
    # Left padding keeps every sequence's next token in the last column.
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # transformers 5 renamed past_key_values to cache; accept either API.
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    eos = tokenizer.eos_token_id
    done = torch.zeros(len(prompts), dtype=torch.bool)
    generated = []
    next_pos = positions[:, -1] + 1
    # Positions past the window have no embedding: the batch stops at its longest row's limit.
    steps = min(max_new_tokens, model.config.max_position_embeddings - int(next_pos.max()) + 1)
    for _ in range(steps):
        logits = out.logits[:, -1, :].float()
        if temperature == 0:
            token = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        token = torch.where(done, torch.full_like(token, pad), token)
        generated.append(token)
        done |= token == eos
        if bool(done.all()) or len(generated) == steps:  # the last token needs no forward pass
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            use_cache=True,
            **{cache_arg: getattr(out, cache_arg)},
        )
        next_pos = next_pos + 1
    rows = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in prompts]
    texts = []
    for row in rows:
        if eos in row:
            row = row[: row.index(eos)]
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, Codex)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)
