"""LocalGenerator's engines agree, non-GPT-2 models fall back to transformers,
and get_generator resolves specs with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import testtime.backends as backends
from testtime.backends import get_generator
from testtime.backends.base import BackendError, CancelToken, SamplingParams
from testtime.backends.local import LocalGenerator

PROMPTS = ["arith: 7 +3 *2\n", "mul: 12*3\n", "b\n"]


def test_hf_engine_matches_lean_engine(lean_gen, hf_gen):
    greedy = SamplingParams(n=2, temperature=0, max_tokens=20, logprobs=True, stop=("=",))
    a, b = lean_gen.generate(PROMPTS, greedy), hf_gen.generate(PROMPTS, greedy)
    for ra, rb in zip(a.completions, b.completions, strict=True):
        for ca, cb in zip(ra, rb, strict=True):
            assert (ca.text, ca.finish_reason, ca.num_tokens, ca.stop_string) == (
                cb.text,
                cb.finish_reason,
                cb.num_tokens,
                cb.stop_string,
            )
            torch.testing.assert_close(
                torch.tensor(ca.token_logprobs), torch.tensor(cb.token_logprobs), atol=1e-4, rtol=0
            )
    assert a.usage.completion_tokens == b.usage.completion_tokens
    # plain generate() prefills a prompt once per sample; the lean sampler once per prompt
    assert b.usage.prompt_tokens == 2 * (a.usage.prompt_tokens + a.usage.cached_tokens)


def test_hf_engine_seed_cancel_and_callback(hf_gen):
    params = SamplingParams(n=4, temperature=1.0, max_tokens=30, seed=9, stop=("a",))
    before = torch.random.get_rng_state()
    x, y = hf_gen.generate(PROMPTS[:1], params), hf_gen.generate(PROMPTS[:1], params)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert [c.text for c in x.completions[0]] == [c.text for c in y.completions[0]]
    cancel, seen = CancelToken(), []

    def first(i: int, j: int, comp) -> None:
        seen.append(comp)
        cancel.cancel()

    params = SamplingParams(n=6, temperature=1.0, max_tokens=60, seed=1, stop=("=",))
    res = hf_gen.generate(PROMPTS[:1], params, cancel=cancel, on_finish=first)
    reasons = [c.finish_reason for c in res.completions[0]]
    assert seen and "cancelled" in reasons
    assert reasons.count("stop") + reasons.count("length") == len(seen)


def test_count_tokens_and_bos(lean_gen):
    assert lean_gen.count_tokens("7+3=10\n") == 7
    ids = lean_gen.encode_prompt("ab")
    assert ids[0] == lean_gen.tokenizer.bos_token_id and len(ids) == 3
    assert lean_gen.num_parameters == sum(
        p.numel() for p in LocalGenerator(lean_gen.model_dir, engine="hf").hf_model.parameters()
    )


def test_non_gpt2_model_falls_back_to_hf_engine(tmp_path: Path, char_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="runs on engine 'hf'"):
        gen = LocalGenerator(tmp_path, engine="lean")
    assert gen.engine == "hf"
    res = gen.generate(["ab"], SamplingParams(n=2, max_tokens=5, seed=0))
    assert all(c.num_tokens <= 5 for c in res.completions[0])


def test_bad_arguments_are_clear(tiny_model_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="valid: lean, hf"):
        LocalGenerator(tiny_model_dir, engine="fast")
    with pytest.raises(ValueError, match="valid: float32"):
        LocalGenerator(tiny_model_dir, dtype="float8")
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        LocalGenerator(tmp_path)
    with pytest.raises(TypeError, match="not one string"):
        LocalGenerator(tiny_model_dir).generate("abc", SamplingParams())


def _shipped() -> Path | None:
    try:
        return backends.embedded_model_dir()
    except BackendError:
        return None


@pytest.mark.skipif(_shipped() is None, reason="TinyReasoner weights are not trained yet")
def test_shipped_tiny_reasoner_lean_equals_hf():
    lean = get_generator("embedded")
    hf = get_generator("embedded", engine="hf")
    prompts = ["arith: 7 +3 *2\n", "arith: 12 *3 -5 +40\n"]
    greedy = SamplingParams(temperature=0, max_tokens=48, logprobs=True)
    a, b = lean.generate(prompts, greedy), hf.generate(prompts, greedy)
    for [ca], [cb] in zip(a.completions, b.completions, strict=True):
        assert (ca.text, ca.num_tokens) == (cb.text, cb.num_tokens)
        torch.testing.assert_close(
            torch.tensor(ca.token_logprobs), torch.tensor(cb.token_logprobs), atol=1e-4, rtol=0
        )
    assert "answer:" in a.completions[0][0].text  # the trained model writes the answer line


def test_hf_engine_seeded_samples_do_not_depend_on_batch_mates(hf_gen):
    params = SamplingParams(n=3, temperature=1.0, max_tokens=12, seed=4)
    together = hf_gen.generate(PROMPTS, params).completions
    alone = [hf_gen.generate([p], params).completions[0] for p in PROMPTS]
    assert [[c.text for c in row] for row in together] == [[c.text for c in row] for row in alone]
    twice = hf_gen.generate([PROMPTS[0], PROMPTS[0]], params).completions
    assert [c.text for c in twice[0]] == [c.text for c in together[0]]
    assert [c.text for c in twice[1]] != [c.text for c in twice[0]]  # a repeat is a new draw
