"""The lean sampler reproduces the Hugging Face GPT-2 exactly (greedy tokens,
log-probabilities) and honours the sampling contract (seed, stop, cancel, usage)."""

from __future__ import annotations

import pytest
import torch

from testtime.backends.base import BackendError, CancelToken, SamplingParams
from testtime.backends.sampler import (
    GPT2Shape,
    KVCache,
    LeanGPT2,
    choose_tokens,
    plan_chunks,
)

PROMPTS = ["arith: 7 +3 *2\n", "mul: 347*86\n", "a\n", "countdown: 3 7 25 50 -> 82\n"]


def hf_greedy(hf_model, gen, prompt: str, max_tokens: int) -> tuple[str, int]:
    """Text and token count of HF's greedy continuation, one prompt, no padding."""
    ids = torch.tensor([gen.encode_prompt(prompt)])
    out = hf_model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=max_tokens,
        eos_token_id=gen.tokenizer.eos_token_id,
        pad_token_id=gen.tokenizer.pad_token_id,
    )[0, ids.shape[1] :].tolist()
    eos = gen.tokenizer.eos_token_id
    n = out.index(eos) + 1 if eos in out else len(out)
    return gen.tokenizer.decode(out[:n], skip_special_tokens=True), n


def test_greedy_matches_hf_generate_on_a_padded_batch(lean_gen, hf_model):
    res = lean_gen.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=24))
    for prompt, [comp] in zip(PROMPTS, res.completions, strict=True):
        text, n = hf_greedy(hf_model, lean_gen, prompt, 24)
        assert (comp.text, comp.num_tokens) == (text, n)


def test_logprobs_match_hf_log_softmax(lean_gen, hf_model):
    prompt_ids = [lean_gen.encode_prompt(p) for p in PROMPTS[:2]]
    params = SamplingParams(n=3, temperature=1.3, max_tokens=20, seed=7, logprobs=True)
    res = lean_gen.generate(PROMPTS[:2], params)
    for ids, comps in zip(prompt_ids, res.completions, strict=True):
        for c in comps:
            gen_ids = c.token_ids  # exact ids, EOS included (text drops special tokens)
            with torch.no_grad():
                logits = hf_model(torch.tensor([ids + gen_ids])).logits[0]
            lp = logits.log_softmax(-1)[len(ids) - 1 : -1]
            want = lp[torch.arange(len(gen_ids)), torch.tensor(gen_ids)]
            assert len(c.token_logprobs) == c.num_tokens == len(gen_ids)
            torch.testing.assert_close(torch.tensor(c.token_logprobs), want, atol=1e-4, rtol=0)


def test_seed_reproduces_samples_and_prefix_is_prefilled_once(lean_gen):
    params = SamplingParams(n=6, temperature=1.0, max_tokens=16, seed=3)
    a = lean_gen.generate(PROMPTS[:2], params)
    b = lean_gen.generate(PROMPTS[:2], params)
    c = lean_gen.generate(PROMPTS[:2], SamplingParams(n=6, temperature=1.0, max_tokens=16, seed=4))
    texts = [[x.text for x in row] for row in a.completions]
    assert texts == [[x.text for x in row] for row in b.completions]
    assert texts != [[x.text for x in row] for row in c.completions]
    assert len(set(texts[0])) > 1  # samples of one prompt differ from each other
    # Each prompt's tokens are processed once although it is sampled 6 times (and those
    # whose keys earlier calls' samples left in the prefix cache not at all).
    total = sum(len(lean_gen.encode_prompt(p)) for p in PROMPTS[:2])
    assert a.usage.prompt_tokens + a.usage.cached_tokens == total
    assert a.usage.prompt_tokens >= 2
    assert a.usage.completion_tokens == sum(x.num_tokens for row in a.completions for x in row)
    assert a.usage.calls == 1


def test_compaction_and_batch_mates_do_not_change_samples(lean_gen, monkeypatch):
    # With a stop string rows end at different steps and are compacted out of the
    # batch; every row must still draw exactly what it draws in the run without stops.
    c_id = lean_gen.tokenizer.convert_tokens_to_ids("c")
    free = lean_gen.generate(PROMPTS, SamplingParams(n=8, max_tokens=24, seed=11))
    kept: list[int] = []
    keep = KVCache.keep
    monkeypatch.setattr(
        KVCache, "keep", lambda self, rows: (kept.append(len(rows)), keep(self, rows))[1]
    )
    stopped = lean_gen.generate(PROMPTS, SamplingParams(n=8, max_tokens=24, seed=11, stop=("c",)))
    assert kept and kept == sorted(kept, reverse=True) and kept[-1] < 32  # the batch shrank
    early = 0
    for frow, srow in zip(free.completions, stopped.completions, strict=True):
        for f, s in zip(frow, srow, strict=True):
            if c_id not in f.token_ids:
                assert (s.token_ids, s.finish_reason) == (f.token_ids, f.finish_reason)
            else:
                cut = f.token_ids.index(c_id)
                assert s.token_ids == f.token_ids[: cut + 1]  # same draws up to the stop
                assert (s.text, s.stop_string) == (f.text[: f.text.index("c")], "c")
                early += s.num_tokens < 24
    assert early >= 4
    # Greedy: a padded batch gives each prompt what it gets alone.
    greedy = SamplingParams(n=2, temperature=0, max_tokens=16, stop=("c", "="))
    batch = lean_gen.generate(PROMPTS, greedy)
    for i, p in enumerate(PROMPTS):
        alone = lean_gen.generate([p], greedy)
        assert [c.text for c in batch.completions[i]] == [c.text for c in alone.completions[0]]


def test_rows_beyond_max_batch_are_chunked_and_prefill_is_counted_per_chunk(lean_gen):
    params = SamplingParams(n=5, temperature=1.0, max_tokens=8, seed=2)
    lean_gen.sampler.max_batch = 2
    cache, lean_gen.sampler.prefix_cache = lean_gen.sampler.prefix_cache, None
    try:
        res = lean_gen.generate(PROMPTS[:2], params)
    finally:
        lean_gen.sampler.max_batch = 256
        lean_gen.sampler.prefix_cache = cache
    assert [len(row) for row in res.completions] == [5, 5]
    # n=5 in chunks of 2 -> each prompt is prefilled 3 times.
    assert res.usage.prompt_tokens == 3 * sum(len(lean_gen.encode_prompt(p)) for p in PROMPTS[:2])


def test_stop_strings_cut_text_and_count_tokens(lean_gen):
    free = lean_gen.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=40)).completions
    stopped = lean_gen.generate(
        PROMPTS, SamplingParams(temperature=0, max_tokens=40, stop=("c", "s"))
    ).completions
    for [f], [s] in zip(free, stopped, strict=True):
        cut = min((i for i in (f.text.find("c"), f.text.find("s")) if i >= 0), default=-1)
        if cut < 0:
            assert s.text == f.text
            continue
        assert s.finish_reason == "stop" and s.text == f.text[:cut]
        assert s.stop_string == f.text[cut]
        assert s.num_tokens == cut + 1  # char-level: the stop character's token is counted


def test_max_tokens_and_length_reason(lean_gen):
    res = lean_gen.generate(["z"], SamplingParams(n=4, temperature=1, max_tokens=3, seed=0))
    for c in res.completions[0]:
        assert c.finish_reason in {"length", "stop"}
        assert c.num_tokens <= 3
        assert c.finish_reason == "stop" or c.num_tokens == 3


def test_first_finish_cancels_the_rest(lean_gen):
    cancel = CancelToken()
    finished: list[tuple[int, int, str]] = []

    def on_finish(i: int, j: int, comp) -> None:
        finished.append((i, j, comp.finish_reason))
        cancel.cancel()

    params = SamplingParams(n=8, temperature=1.0, max_tokens=60, seed=5, stop=("=",))
    res = lean_gen.generate(PROMPTS[:1], params, cancel=cancel, on_finish=on_finish)
    comps = res.completions[0]
    assert finished and finished[0][2] == "stop"
    done = [c for c in comps if c.finish_reason != "cancelled"]
    assert len(done) == len(finished)  # callbacks came for exactly the finished samples
    assert any(c.finish_reason == "cancelled" and c.num_tokens > 0 for c in comps)
    assert max(c.num_tokens for c in comps) < 60
    assert res.usage.completion_tokens == sum(c.num_tokens for c in comps)


def test_cancel_before_start_generates_nothing(lean_gen):
    cancel = CancelToken()
    cancel.cancel()
    res = lean_gen.generate(PROMPTS[:2], SamplingParams(n=2), cancel=cancel)
    assert all(
        c.finish_reason == "cancelled" and c.num_tokens == 0 for row in res.completions for c in row
    )
    assert res.usage.total_tokens == 0


def test_prompt_longer_than_context_is_refused(lean_gen):
    with pytest.raises(BackendError, match="context is 96 tokens"):
        lean_gen.generate(["1" * 200], SamplingParams())


def test_generation_stops_at_the_context_end(lean_gen):
    res = lean_gen.generate(["1" * 90], SamplingParams(temperature=0, max_tokens=50))
    c = res.completions[0][0]
    assert c.num_tokens <= 96 - 91 and (c.finish_reason in {"length", "stop"})


def test_choose_tokens_follows_temperature_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20000, 1)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(choose_tokens(logits, SamplingParams(temperature=1.0), u), minlength=4)
    torch.testing.assert_close(
        freq / 20000.0, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015, rtol=0
    )
    # top_p = 0.8 keeps {0.5, 0.3}: renormalised 0.625 / 0.375.
    freq = torch.bincount(choose_tokens(logits, SamplingParams(top_p=0.8), u), minlength=4)
    assert freq[2:].sum() == 0
    assert abs(freq[0] / 20000.0 - 0.625) < 0.015
    # Low temperature sharpens towards the mode; T = 0 is argmax.
    cold = torch.bincount(choose_tokens(logits, SamplingParams(temperature=0.2), u), minlength=4)
    assert cold[0] > 0.9 * 20000
    assert choose_tokens(logits[:2], SamplingParams(temperature=0), None).tolist() == [0, 0]


def test_plan_chunks_covers_every_row_once():
    chunks = plan_chunks([5, 1, 3], n=5, max_batch=4)
    rows = [(i, j) for prompts, j0, j1 in chunks for i in prompts for j in range(j0, j1)]
    assert sorted(rows) == [(i, j) for i in range(3) for j in range(5)]
    assert all(len(p) * (j1 - j0) <= 4 for p, j0, j1 in chunks)
    assert [p for p, _, _ in plan_chunks([5, 1, 3], n=1, max_batch=2)] == [[1, 2], [0]]


def test_weights_from_a_state_dict_and_bad_checkpoints(hf_model, lean_gen):
    shape = GPT2Shape.from_config(hf_model.config.to_dict())
    sd = hf_model.state_dict()  # includes the tied lm_head.weight, which must not count twice
    m = LeanGPT2(shape, sd)
    n_hf = sum(p.numel() for p in hf_model.parameters())
    assert m.num_parameters == lean_gen.lean.num_parameters == n_hf
    ids = torch.tensor([[1, 5, 9, 12]])
    cache = KVCache(shape, 1, 4, 4, torch.float32, torch.device("cpu"))
    with torch.no_grad():
        want = hf_model(ids).logits[:, -1]
    torch.testing.assert_close(
        m.prefill(ids, torch.zeros(1, dtype=torch.long), cache, 1), want, atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match="not a GPT-2 config"):
        GPT2Shape.from_config({"model_type": "llama"})
    with pytest.raises(ValueError, match="missing tensor 'h.1.ln_1.weight'"):
        LeanGPT2(shape, {k: v for k, v in sd.items() if "h.1.ln_1.weight" not in k})


def test_kv_cache_growth_changes_nothing(lean_gen, monkeypatch):
    import testtime.backends.sampler as sampler_mod

    params = SamplingParams(n=2, temperature=0.7, max_tokens=20, seed=1, logprobs=True)
    once = lean_gen.generate(PROMPTS, params)
    monkeypatch.setattr(sampler_mod, "CACHE_BLOCK", 3)  # grow the cache every 3 steps
    grown = lean_gen.generate(PROMPTS, params)
    for ra, rb in zip(once.completions, grown.completions, strict=True):
        for a, b in zip(ra, rb, strict=True):
            assert (a.text, a.num_tokens) == (b.text, b.num_tokens)
            torch.testing.assert_close(
                torch.tensor(a.token_logprobs), torch.tensor(b.token_logprobs), atol=1e-5, rtol=0
            )


def test_a_prompts_seeded_samples_do_not_depend_on_its_batch_mates(lean_gen):
    # What lets a run store key a pool by (prompt, seed): regrouping problems into other
    # batches (a resumed run) or other chunk sizes reproduces every sample exactly.
    params = SamplingParams(n=4, temperature=1.0, max_tokens=16, seed=5)
    together = lean_gen.generate(PROMPTS, params).completions
    alone = [lean_gen.generate([p], params).completions[0] for p in PROMPTS]
    regrouped = lean_gen.generate([PROMPTS[3], PROMPTS[1]], params).completions
    lean_gen.sampler.max_batch = 3
    try:
        chunked = lean_gen.generate(PROMPTS, params).completions
    finally:
        lean_gen.sampler.max_batch = 256

    def ids(rows):
        return [[c.token_ids for c in row] for row in rows]

    assert ids(together) == ids(alone) == ids(chunked)
    assert ids(regrouped) == ids([together[3], together[1]])
    # The same prompt twice in one call still gets two different sets of samples.
    twice = lean_gen.generate([PROMPTS[2], PROMPTS[2]], params).completions
    assert ids([twice[0]]) == ids([together[2]]) and ids([twice[1]]) != ids([twice[0]])
