"""OpenAIGenerator against a real OpenAI-compatible HTTP server on loopback
(tests/backends/openai_stub_server.py, backed by the tiny random GPT-2)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import replace

import pytest

from testtime.backends import get_generator
from testtime.backends.base import BackendError, CancelToken, SamplingParams
from testtime.backends.openai_http import OpenAIGenerator, _parse_retry_after
from testtime.backends.seeds import server_seeds

from .openai_stub_server import Fault, StubServer

KEY = "sk-test-123"
PROMPTS = ["arith: 7 +3 *2\n", "mul: 12*3\n"]


@pytest.fixture(scope="module")
def server(lean_gen):
    srv = StubServer(lean_gen, api_key=KEY)
    srv.base_url = srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def stub(server):
    server.faults.clear()
    server.token_delay_s = 0.0
    return server


def client(stub, **kw) -> OpenAIGenerator:
    opts = {"model": "tiny", "api_key": KEY, "timeout": 2.0, "backoff_base": 0.01, **kw}
    return OpenAIGenerator(stub.base_url, **opts)


def same_as_local(res, lean_gen, params: SamplingParams) -> None:
    """The server's samples are the model's, drawn with the seed each request was sent."""
    seeds = server_seeds(params.seed, PROMPTS, params.n)
    for i, (prompt, row) in enumerate(zip(PROMPTS, res.completions, strict=True)):
        want = lean_gen.generate([prompt], replace(params, seed=seeds[i][0])).completions[0]
        for got, ref in zip(row, want, strict=True):
            assert (got.text, got.finish_reason, got.num_tokens, got.stop_string) == (
                ref.text,
                ref.finish_reason,
                ref.num_tokens,
                ref.stop_string,
            )
            assert got.token_logprobs == pytest.approx(ref.token_logprobs)


def test_completions_stream_matches_the_model(stub, lean_gen):
    params = SamplingParams(n=3, temperature=0.8, max_tokens=12, seed=1, logprobs=True, stop=("=",))
    local = [lean_gen.generate([p], params).usage for p in PROMPTS]
    with client(stub) as gen:
        # First contact: stops watched client-side until the server shows it names them.
        first = gen.generate(PROMPTS, params)
        assert "stop" not in stub.stats.bodies[-1]
        assert gen.traits.stop_reason is True and gen.describe()["stop_detection"].startswith(
            "server"
        )
        res = gen.generate(PROMPTS, params)
        assert gen.capabilities.continuation
    for r in (first, res):
        same_as_local(r, lean_gen, params)
        assert r.usage.completion_tokens == sum(u.completion_tokens for u in local)
    assert res.usage.prompt_tokens == sum(u.prompt_tokens + u.cached_tokens for u in local)
    assert res.usage.calls == 2
    body = stub.stats.bodies[-1]
    assert (body["n"], body["stop"], body["logprobs"]) == (3, ["="], 1)
    seeds = server_seeds(1, PROMPTS, 3)
    assert {b["seed"] for b in stub.stats.bodies[-2:]} == {seeds[0][0], seeds[1][0]}


def test_chat_mode_and_async_use_inside_a_running_loop(stub, lean_gen):
    params = SamplingParams(n=2, temperature=1.0, max_tokens=10, seed=4, logprobs=True)
    gen = client(stub, mode="chat")
    assert not gen.capabilities.continuation

    async def main():
        a = await gen.agenerate(PROMPTS, params)
        b = gen.generate(PROMPTS, params)  # the sync wrapper works while this loop runs
        return a, b

    a, b = asyncio.run(main())
    gen.close()
    same_as_local(a, lean_gen, params)
    assert [[c.text for c in r] for r in a.completions] == [
        [c.text for c in r] for r in b.completions
    ]
    assert stub.stats.bodies[-1]["logprobs"] is True and "messages" in stub.stats.bodies[-1]


def test_cancel_closes_the_stream_and_counts_received_tokens(stub, tiny_model_dir):
    stub.token_delay_s = 0.2  # 60 tokens would take 12 s
    cancel = CancelToken()
    # Late enough that the first tokens have arrived even on a loaded machine.
    with client(stub) as gen:  # warm the server's model up first
        gen.generate(PROMPTS[:1], SamplingParams(n=2, temperature=0, max_tokens=2))
    # The stub generates all 2 x 60 tokens before streaming: slow on a loaded machine.
    threading.Timer(2.5, cancel.cancel).start()
    closed_before = stub.stats.closed_early
    t0 = time.monotonic()
    with client(stub) as gen:
        res = gen.generate(
            PROMPTS[:1], SamplingParams(n=2, temperature=0, max_tokens=60), cancel=cancel
        )
    assert time.monotonic() - t0 < 6.0
    comps = res.completions[0]
    assert all(c.finish_reason == "cancelled" and 0 < c.num_tokens < 60 for c in comps)
    assert res.usage.completion_tokens == sum(c.num_tokens for c in comps)
    deadline = time.monotonic() + 2
    while stub.stats.closed_early == closed_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stub.stats.closed_early == closed_before + 1  # the server saw the disconnect


def test_first_finish_cancels_other_samples(stub):
    stub.token_delay_s = 0.02
    cancel, seen = CancelToken(), []

    def first(i, j, comp):
        seen.append(comp)
        cancel.cancel()

    with client(stub, split_n=True) as gen:
        res = gen.generate(
            PROMPTS[:1],
            SamplingParams(n=4, max_tokens=60, seed=3, stop=("c",)),
            cancel=cancel,
            on_finish=first,
        )
    reasons = [c.finish_reason for c in res.completions[0]]
    assert seen and seen[0].finish_reason in ("stop", "length")
    assert "cancelled" in reasons
    # split_n: sample j's own seed
    assert sorted(b["seed"] for b in stub.stats.bodies[-4:]) == sorted(server_seeds(3, PROMPTS[:1], 4)[0])


def test_every_prompt_of_a_seeded_call_gets_its_own_reproducible_seed(stub):
    params = SamplingParams(n=1, temperature=1.0, max_tokens=24, seed=11)
    prompt, other = PROMPTS
    with client(stub) as gen:
        twice = gen.generate([prompt, prompt], params)  # a repeated prompt: two samples
        sent = sorted(b["seed"] for b in stub.stats.bodies[-2:])
        alone = gen.generate([prompt], params)
        mixed = gen.generate([other, prompt, prompt], params)  # other batch-mates, same samples
    assert sent == sorted(s for row in server_seeds(11, [prompt, prompt], 1) for s in row)
    assert len(set(sent)) == 2 and all(0 <= s < 2**31 for s in sent)
    texts = [row[0].text for row in twice.completions]
    assert texts[0] != texts[1]
    assert alone.completions[0][0].text == texts[0]
    assert [row[0].text for row in mixed.completions[1:]] == texts


def test_retries_on_500_and_429_then_succeeds(stub, lean_gen):
    stub.faults.extend([Fault(status=500), Fault(status=429, headers={"Retry-After": "0.2"})])
    params = SamplingParams(n=1, temperature=0, max_tokens=8)
    t0 = time.monotonic()
    with client(stub) as gen:
        res = gen.generate(PROMPTS[:1], params)
    assert time.monotonic() - t0 >= 0.2  # Retry-After was honoured
    assert res.usage.calls == 3
    assert (
        res.completions[0][0].text == lean_gen.generate(PROMPTS[:1], params).completions[0][0].text
    )


def test_retries_are_bounded(stub):
    stub.faults.extend([Fault(status=503)] * 3)
    with (
        client(stub, max_attempts=2) as gen,
        pytest.raises(BackendError, match="after 2 attempts: HTTP 503"),
    ):
        gen.generate(PROMPTS[:1], SamplingParams(max_tokens=4))
    stub.faults.clear()


def test_timeouts_are_retried_then_reported(stub):
    # Generous margins: the retried request must finish inside the timeout on a loaded machine.
    stub.faults.append(Fault(stall_s=3.0))
    with client(stub, timeout=1.5) as gen:
        res = gen.generate(PROMPTS[:1], SamplingParams(temperature=0, max_tokens=4))
        assert res.completions[0][0].finish_reason == "length" and res.usage.calls == 2
        stub.faults.extend([Fault(stall_s=0.6)] * 2)
        with pytest.raises(BackendError, match="timed out"):
            OpenAIGenerator(
                stub.base_url,
                model="tiny",
                api_key=KEY,
                timeout=0.3,
                max_attempts=2,
                backoff_base=0.01,
            ).generate(PROMPTS[:1], SamplingParams(max_tokens=4))


def test_refused_key_and_unknown_model_are_clear(stub):
    with client(stub, api_key="sk-wrong-secret") as gen, pytest.raises(BackendError) as err:
        gen.generate(PROMPTS[:1], SamplingParams(max_tokens=4))
    assert "refused the API key" in str(err.value) and "sk-wrong-secret" not in str(err.value)
    assert "sk-wrong-secret" not in repr(gen)
    with (
        client(stub, model="gpt-9") as gen,
        pytest.raises(BackendError, match="'gpt-9' is unknown"),
    ):
        gen.generate(PROMPTS[:1], SamplingParams(max_tokens=4))
    assert stub.stats.requests >= 2


def test_malformed_json_is_a_backend_error(stub):
    stub.faults.append(Fault(malformed=True))
    with client(stub) as gen, pytest.raises(BackendError, match="malformed JSON"):
        gen.generate(PROMPTS[:1], SamplingParams(max_tokens=4))


def test_unreachable_server_and_key_from_env(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    gen = OpenAIGenerator(
        f"http://127.0.0.1:{port}/v1", model="m", max_attempts=2, backoff_base=0.01
    )
    with pytest.raises(BackendError, match="connection error"):
        gen.generate(["x"], SamplingParams(max_tokens=2))
    gen.close()
    with pytest.raises(NotImplementedError, match="tokenizer"):
        gen.count_tokens("abc")  # as the Generator interface says for "cannot count"
    with pytest.raises(ValueError, match="MY_KEY"):
        OpenAIGenerator("http://x/v1", model="m", api_key_env="MY_KEY")
    monkeypatch.setenv("MY_KEY", "sk-env")
    gen = get_generator("openai:http://127.0.0.1:1/v1", model="m", api_key_env="MY_KEY")
    assert isinstance(gen, OpenAIGenerator) and gen.base_url == "http://127.0.0.1:1/v1"
    with pytest.raises(ValueError, match="needs a model name"):
        get_generator("openai:http://127.0.0.1:1/v1")


def test_retry_after_parsing():
    assert _parse_retry_after("1.5") == 1.5
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date
    assert _parse_retry_after("soon") is None


def test_server_without_stream_usage_or_n_support(stub, lean_gen):
    stub.reject_stream_options = True
    try:
        params = SamplingParams(n=2, temperature=0, max_tokens=6)
        with client(stub) as gen:
            res = gen.generate(PROMPTS[:1], params)
            # usage counted from the stream: one token per chunk, prompt estimated
            local = lean_gen.generate(PROMPTS[:1], params)
            assert res.usage.completion_tokens == local.usage.completion_tokens
            assert "stream_options" not in stub.stats.bodies[-1]
            # A server seen honouring n that then returns fewer choices is an error.
            stub.faults.append(Fault(one_choice=True))
            with pytest.raises(BackendError, match="1 of the 2 samples.*split_n=true"):
                gen.generate(PROMPTS[:1], params)
    finally:
        stub.reject_stream_options = False


def test_calls_reuse_one_keep_alive_connection(stub):
    # Each stream is read to its end after [DONE], so the pool keeps the connection.
    before = len(stub.stats.client_ports)
    with client(stub) as gen:
        for _ in range(3):
            gen.generate(PROMPTS[:1], SamplingParams(max_tokens=4, seed=0))
    ports = stub.stats.client_ports[before:]
    assert len(ports) == 3 and len(set(ports)) == 1
