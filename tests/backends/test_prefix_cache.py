"""Prefix reuse on the lean engine: the trie/LRU store, and continuations that prefill
only their new tokens while sampling what a fresh prefill samples."""

from __future__ import annotations

import pytest
import torch

from testtime.backends.base import SamplingParams
from testtime.backends.local import LocalGenerator
from testtime.backends.prefix_cache import PrefixCache

PROMPT = "arith: 7 +3 *2\n"


def kv(n: int, fill: float) -> torch.Tensor:
    return torch.full((2, 3, n, 4), fill)  # (layers, heads, tokens, head_dim)


def test_longest_prefix_lookup_and_lru_eviction():
    cache = PrefixCache(max_bytes=2 * 2 * kv(4, 0).numel() * 4)  # room for two 4-token entries
    cache.store([1, 2, 3, 4], kv(4, 1.0), kv(4, -1.0))
    d, k, v, _ = cache.lookup([1, 2, 3, 4, 5])
    assert d == 4 and k.shape == (2, 3, 4, 4) and float(v[0, 0, 0, 0]) == -1.0
    assert cache.lookup([1, 2, 9])[0] == 2  # a prefix of a stored sequence serves too
    assert cache.lookup([1, 2, 3, 4])[0] == 3  # the last token always runs
    assert cache.lookup([7, 1, 2]) is None and cache.lookup([1]) is None
    cache.store([1, 2, 8, 8], kv(4, 2.0), kv(4, -2.0))
    cache.store([5, 6, 7, 8], kv(4, 3.0), kv(4, -3.0))  # over budget: the oldest goes
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    d, k, _, _ = cache.lookup([1, 2, 3, 4, 5])
    assert d == 2 and float(k[0, 0, 0, 0]) == 2.0  # only the shared "1 2" is left
    assert cache.lookup([5, 6, 7, 8, 9])[0] == 4
    cache.store(list(range(100)), kv(100, 0.0), kv(100, 0.0))  # larger than the budget: skipped
    assert len(cache) == 2


@pytest.fixture
def pair(tiny_model_dir):
    """The same model with and without a prefix cache."""
    return LocalGenerator(tiny_model_dir), LocalGenerator(tiny_model_dir, prefix_cache_mb=0)


def test_continuations_prefill_only_new_tokens_and_sample_the_same(pair):
    cached, fresh = pair
    step = SamplingParams(n=3, temperature=1.0, max_tokens=10, seed=5, stop=(" ",))
    first = cached.generate([PROMPT], step)
    assert first.usage.cached_tokens == 0
    # A search's next call: each partial solution (prompt + its step) is extended.
    prompts = [PROMPT + c.text + (c.stop_string or "") for c in first.completions[0]]
    greedy = SamplingParams(temperature=0, max_tokens=12, logprobs=True)
    got = cached.generate(prompts, greedy)
    want = fresh.generate(prompts, greedy)
    total = sum(len(cached.encode_prompt(p)) for p in prompts)
    assert got.usage.prompt_tokens + got.usage.cached_tokens == total == want.usage.prompt_tokens
    # Every sample's keys were kept: the prompts prefill their last tokens only (rows of
    # one batch compute from the same column; a sampled special token, dropped from the
    # text, shortens a match).
    assert 3 <= got.usage.prompt_tokens < total / 3
    for g, w in zip(got.completions, want.completions, strict=True):
        assert g[0].text == w[0].text
        torch.testing.assert_close(
            torch.tensor(g[0].token_logprobs), torch.tensor(w[0].token_logprobs), atol=1e-4, rtol=0
        )
