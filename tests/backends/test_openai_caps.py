"""Capability discovery of the OpenAI-compatible backend against a stub server that
answers as llama-cpp-python's does (n ignored, no stop_reason, no usage in streams)."""

from __future__ import annotations

import pytest

from testtime.backends.base import BackendError, SamplingParams, UnsupportedCapability
from testtime.backends.openai_http import OpenAIGenerator
from testtime.backends.seeds import server_seeds

from .openai_stub_server import StubServer

KEY = "sk-test-123"
PROMPT = "arith: 7 +3 *2\n"


@pytest.fixture(scope="module")
def server(lean_gen):
    srv = StubServer(lean_gen, api_key=KEY)
    srv.base_url = srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def llama(server):
    server.faults.clear()
    server.token_delay_s = 0.0
    server.llama_like, server.interrupt = True, False
    server.logprobs = server.honour_seed = True
    server.reject_fields, server.reject_values = set(), {}
    yield server
    server.llama_like = server.interrupt = False
    server.logprobs = server.honour_seed = True
    server.reject_fields, server.reject_values = set(), {}


def client(stub, **kw) -> OpenAIGenerator:
    opts = {"model": "tiny", "api_key": KEY, "timeout": 5.0, "backoff_base": 0.01, **kw}
    return OpenAIGenerator(stub.base_url, **opts)


def local_split(lean_gen, params: SamplingParams) -> list:
    """What split requests give: sample j is one sample drawn with its own seed."""
    seeds = server_seeds(params.seed, [PROMPT], params.n)[0]
    return [
        lean_gen.generate([PROMPT], SamplingParams(**{**vars(params), "n": 1, "seed": seeds[j]}))
        .completions[0][0]
        for j in range(params.n)
    ]


def test_n_ignored_is_split_into_single_requests(llama, lean_gen):
    params = SamplingParams(n=4, temperature=1.0, max_tokens=10, seed=7)
    with client(llama) as gen:
        res = gen.generate([PROMPT], params)
        bodies = llama.stats.bodies[-4:]
        assert [b["n"] for b in bodies] == [4, 1, 1, 1]
        assert sorted(b["seed"] for b in bodies) == sorted(server_seeds(7, [PROMPT], 4)[0])
        assert gen.traits.n is False and "split" in gen.describe()["requests"]
        # Every sample's tokens counted once (the n=4 request filled sample 0 only).
        assert res.usage.completion_tokens == sum(c.num_tokens for c in res.completions[0])
        assert res.usage.calls == 4
        again = gen.generate([PROMPT], params)  # learnt: split from the start
        assert [b["n"] for b in llama.stats.bodies[-4:]] == [1, 1, 1, 1]
    want = [c.text for c in local_split(lean_gen, params)]
    assert [c.text for c in res.completions[0]] == want
    assert [c.text for c in again.completions[0]] == want


def test_stops_are_detected_from_the_text_without_stop_reason(llama, lean_gen):
    # "3", " " and "=" are frequent characters of the random char model's samples.
    params = SamplingParams(n=6, temperature=1.0, max_tokens=20, seed=3, stop=("=", " "))
    with client(llama, split_n=True) as gen:
        res = gen.generate([PROMPT], params)
        assert all("stop" not in b for b in llama.stats.bodies[-6:])  # watched client-side
        assert gen.traits.stop_reason is False
        assert gen.describe()["stop_detection"].startswith("client")
    got = res.completions[0]
    want = local_split(lean_gen, params)
    assert [(c.text, c.finish_reason, c.stop_string) for c in got] == [
        (c.text, c.finish_reason, c.stop_string) for c in want
    ]
    for c, w in zip(got, want, strict=True):  # EOS is not streamed: not counted from a stream
        assert c.num_tokens == w.num_tokens - (c.finish_reason == "stop" and not c.stop_string)
    assert any(c.stop_string for c in got)  # the test exercises a stop


def test_prompt_tokens_from_the_tokenizer_when_the_server_sends_no_usage(
    llama, lean_gen, tiny_model_dir
):
    params = SamplingParams(n=1, temperature=0, max_tokens=6)
    local = lean_gen.generate([PROMPT], params).usage
    with client(llama, tokenizer=str(tiny_model_dir)) as gen:
        res = gen.generate([PROMPT], params)
        assert gen.traits.stream_usage is False
        assert gen.describe()["prompt_tokens_from"] == {"tokenizer": 1}
    # BOS counted as the server prefills it (the tokenizer's BOS differs from its EOS).
    assert (res.usage.prompt_tokens, res.usage.completion_tokens) == (
        local.prompt_tokens + local.cached_tokens, local.completion_tokens
    )
    with client(llama) as gen, pytest.warns(UserWarning, match="ESTIMATED"):
        gen.generate([PROMPT], params)  # no tokenizer, no tokenize endpoint: an estimate
        assert any("ESTIMATED" in note for note in gen.describe()["server"]["notes"])


def test_neutral_sampling_fields_overrides_and_refusals(llama):
    params = SamplingParams(max_tokens=4, seed=0)
    with client(llama) as gen:
        gen.generate([PROMPT], params)
    body = llama.stats.bodies[-1]
    assert (body["top_k"], body["min_p"], body["repeat_penalty"]) == (-1, 0.0, 1.0)
    with client(llama, top_k=40, extra_body={"typical_p": 0.9}) as gen:
        gen.generate([PROMPT], params)
    assert (llama.stats.bodies[-1]["top_k"], llama.stats.bodies[-1]["typical_p"]) == (40, 0.9)
    llama.reject_values = {"top_k": -1}  # llama-cpp-python: top_k >= 0, 0 = off
    with client(llama, max_attempts=1) as gen:
        gen.generate([PROMPT], params)
        assert gen.traits.values == {"top_k": 0} and llama.stats.bodies[-1]["top_k"] == 0
    llama.reject_fields = {"min_p", "repeat_penalty"}
    with client(llama, max_attempts=1) as gen:
        res = gen.generate([PROMPT], params)  # dropped, not an attempt
        assert res.completions[0][0].finish_reason in ("stop", "length")
        assert {"min_p", "repeat_penalty"} <= gen.traits.refused
        assert "min_p" not in llama.stats.bodies[-1]
    with client(llama, min_p=0.1) as gen, pytest.raises(BackendError, match="refuses.*min_p"):
        gen.generate([PROMPT], params)


def test_interrupted_streams_are_serialised_and_explained(llama):
    llama.interrupt, llama.token_delay_s = True, 0.01
    params = SamplingParams(n=4, temperature=1.0, max_tokens=12, seed=1)
    with client(llama, split_n=True, max_attempts=1) as gen:
        with pytest.raises(BackendError, match="--interrupt_requests false"):
            gen.generate([PROMPT], params)
    with client(llama, split_n=True) as gen:  # learnt (cached): one request at a time
        res = gen.generate([PROMPT], params)
        assert gen.describe()["serialised"]
    assert all(c.finish_reason in ("stop", "length") for c in res.completions[0])


def test_missing_logprobs_and_seed_are_found_before_a_strategy_starts(llama):
    llama.logprobs, llama.honour_seed = False, False
    with client(llama) as gen:
        with pytest.raises(UnsupportedCapability, match="needs logprobs"):
            gen.require("logprobs", by="strategy 'rpc'")  # probes the server first
        assert gen.traits.logprobs is False and gen.traits.seed is False
        assert not gen.capabilities.seed
        with pytest.raises(UnsupportedCapability, match="no logprobs"):
            gen.generate([PROMPT], SamplingParams(max_tokens=4, logprobs=True))
