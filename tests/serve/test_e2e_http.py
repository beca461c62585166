"""`testtime serve` over the real OpenAI-compatible HTTP backend: the upstream is
itself a testtime server (scripted generator), so the whole chain — client,
server, HTTP backend, upstream — is real HTTP on loopback."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from testtime.backends import get_generator
from testtime.backends.base import BackendError, SamplingParams
from testtime.serve.app import create_app
from testtime.serve.server import BackgroundServer

from .scripted import API_KEY, ScriptedGenerator, client, majority_script

UPSTREAM_KEY = "sk-upstream-very-secret"


@pytest.fixture
def chain(make_server, monkeypatch):
    """``chain(upstream_generator, **backend_options) -> (front url, upstream generator)``."""
    monkeypatch.setenv("TT_UPSTREAM_KEY", UPSTREAM_KEY)

    def build(upstream_gen: ScriptedGenerator, **backend_options):
        upstream = make_server(upstream_gen, api_keys=[UPSTREAM_KEY])
        backend = get_generator(
            f"openai:{upstream}/v1", model="tiny", api_key_env="TT_UPSTREAM_KEY", **backend_options
        )
        return make_server(backend, secrets=[UPSTREAM_KEY]), upstream_gen

    return build


def test_majority_over_http_backend(chain) -> None:
    front, upstream = chain(ScriptedGenerator(majority_script))
    resp = client(front).chat.completions.create(
        model="majority-3/tiny", messages=[{"role": "user", "content": "3+4"}]
    )
    assert resp.choices[0].message.content.endswith("answer: 7")
    tt = resp.usage.model_extra["testtime"]
    # the backend asked the upstream for n=3 in one call; upstream usage flows back
    assert tt["candidates"] == 3 and tt["compute"]["model_calls"] == 1
    assert resp.usage.completion_tokens == 18
    stream = client(front).completions.create(model="tiny", prompt="3+4", stream=True)
    assert "".join(ch.choices[0].text for ch in stream).endswith("answer: 7")


def test_upstream_failure_is_a_clear_502_without_the_key(chain) -> None:
    failing = ScriptedGenerator(majority_script, fail=lambda: BackendError("model crashed"))
    front, _ = chain(failing, max_attempts=1)
    with pytest.raises(openai.APIStatusError) as err:
        client(front).completions.create(model="tiny", prompt="q")
    assert err.value.status_code == 502 and "HTTP 502" in err.value.message
    assert UPSTREAM_KEY not in err.value.response.text
    failing.fail = None
    assert client(front).completions.create(model="tiny", prompt="q").choices[0].text


def test_upstream_timeout_is_a_504(chain) -> None:
    slow = ScriptedGenerator(lambda p, c, i: " ".join(["t"] * 400), token_delay=0.005)
    front, _ = chain(slow, max_attempts=1, timeout=0.3)
    with pytest.raises(openai.APIStatusError) as err:
        client(front).completions.create(model="tiny", prompt="q")
    assert err.value.status_code == 504 and err.value.body["code"] == "upstream_timeout"


def test_disconnect_cancels_through_the_chain(chain) -> None:
    slow = ScriptedGenerator(lambda p, c, i: " ".join(["t"] * 2000), token_delay=0.005)
    front, upstream = chain(slow)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{front}/v1/completions",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "majority-2/tiny", "prompt": "q"},
            timeout=httpx.Timeout(5, read=0.4),
        )
    start = time.monotonic()
    # front cancels its backend call -> the backend closes its stream -> the upstream
    # server sees the disconnect and stops decoding (2000 tokens would take 10 s).
    assert upstream.finished.wait(timeout=3)
    assert time.monotonic() - start < 3
    # The upstream samples the n=2 choices in one call: both are cut short.
    assert upstream.cancelled_samples == 2 and upstream.calls == 1


def test_backend_runs_on_the_servers_loop_while_served(make_server) -> None:
    upstream = make_server(ScriptedGenerator(majority_script), api_keys=[UPSTREAM_KEY])
    backend = get_generator(f"openai:{upstream}/v1", model="tiny", api_key=UPSTREAM_KEY)
    with BackgroundServer(create_app(backend, model_name="tiny", api_keys=[API_KEY])) as front:
        for model in ("tiny", "majority-3/tiny"):
            text = client(front).completions.create(model=model, prompt="3+4").choices[0].text
            assert text.endswith("answer: 7")
        runner = backend._runner
        # The front server's loop, adopted: no private loop thread to hop through.
        assert runner is not None and not runner.owned and runner.loop.is_running()
    assert backend._runner is None  # released at shutdown; sync use opens a private loop
    params = SamplingParams(max_tokens=16)
    assert backend.generate(["3+4"], params).completions[0][0].text.endswith("answer: 7")
    backend.close()


def test_upstream_errors_name_neither_its_url_nor_its_key_variable(
    make_server, monkeypatch
) -> None:
    upstream = make_server(ScriptedGenerator(majority_script), api_keys=[UPSTREAM_KEY])
    monkeypatch.setenv("TT_WRONG_KEY", "sk-wrong")  # the upstream refuses this key
    backend = get_generator(
        f"openai:{upstream}/v1", model="tiny", api_key_env="TT_WRONG_KEY", max_attempts=1
    )
    front = make_server(backend)
    r = httpx.post(
        f"{front}/v1/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "tiny", "prompt": "q"},
    )
    message = r.json()["error"]["message"]
    assert r.status_code == 502 and "refused the API key" in message
    assert "127.0.0.1" not in message and "TT_WRONG_KEY" not in message
    assert "<upstream>" in message and "sk-wrong" not in r.text
