"""The server end to end through the official ``openai`` client (and raw httpx for
what the client cannot send), over a scripted upstream generator."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from testtime.backends.base import BackendError
from testtime.serve.app import check_binding
from testtime.serve.limits import Limits

from .scripted import API_KEY, ScriptedGenerator, client, majority_script


def test_plain_model_is_one_sample(make_server) -> None:
    gen = ScriptedGenerator(lambda p, c, i: f"echo {p.strip()}\nanswer: 1")
    url = make_server(gen)
    resp = client(url).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello there"}]
    )
    assert resp.choices[0].message.content == "echo hello there\nanswer: 1"
    assert resp.choices[0].finish_reason == "stop"
    # prompt "hello there\n": 2 tokens; completion: 4 space-separated tokens
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 4)
    assert resp.usage.total_tokens == 6
    tt = resp.usage.model_extra["testtime"]
    assert tt["strategy"] == "sample" and tt["candidates"] == 1
    assert tt["results"][0]["answer"] == "1"


def test_majority_by_model_prefix_counts_hidden_candidates(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script))
    resp = client(url).chat.completions.create(
        model="majority-5/tiny", messages=[{"role": "user", "content": "3+4"}]
    )
    assert resp.choices[0].message.content.endswith("answer: 7")
    tt = resp.usage.model_extra["testtime"]
    assert tt["strategy"] == "majority" and tt["options"]["n"] == 5
    assert tt["results"][0]["votes"] == {"7": 3, "8": 2}
    # five hidden candidates of 6 tokens each, five copies of the 1-token prompt
    assert resp.usage.completion_tokens == 30 and resp.usage.prompt_tokens == 5
    assert tt["compute"]["generated_tokens"] == 30 and tt["compute"]["model_calls"] == 1


def test_strategy_from_extra_body_and_top_level_fields(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script))
    c = client(url)
    nested = c.completions.create(
        model="tiny", prompt="3+4", extra_body={"testtime": {"strategy": "majority", "n": 3}}
    )
    top = c.completions.create(model="tiny", prompt="3+4", extra_body={"strategy": "majority"})
    assert nested.choices[0].text.endswith("answer: 7")
    assert nested.usage.model_extra["testtime"]["results"][0]["votes"] == {"7": 2, "8": 1}
    assert top.usage.model_extra["testtime"]["candidates"] == 8  # the library default n


def test_verifier_guided_strategy_with_a_task(make_server) -> None:
    # Samples 0 and 2 contain a wrong step; the oracle step checker prefers sample 1.
    solutions = ["3+4=8\n8*2=16\nanswer: 16", "3+4=7\n7*2=14\nanswer: 14", "3+4=9\nanswer: 9"]
    url = make_server(ScriptedGenerator(lambda p, c, i: solutions[i % 3]))
    resp = client(url).completions.create(
        model="best-of-3/tiny",
        prompt="arith: 3 +4 *2\n",
        extra_body={"testtime": {"task": "arith", "verifier": "oracle"}},
    )
    assert resp.choices[0].text == solutions[1]
    assert resp.usage.model_extra["testtime"]["verifier"] == "oracle"


def test_multiple_prompts_and_choices(make_server) -> None:
    url = make_server(ScriptedGenerator(lambda p, c, i: f"answer: {p.strip()}"))
    resp = client(url).completions.create(model="majority-2/tiny", prompt=["a", "b"], n=2)
    # n independent strategy runs per prompt, prompt-major like OpenAI
    assert [ch.text for ch in resp.choices] == ["answer: a", "answer: a", "answer: b", "answer: b"]
    assert [ch.index for ch in resp.choices] == [0, 1, 2, 3]
    assert resp.usage.model_extra["testtime"]["candidates"] == 8


def test_streaming_chat_and_completions(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script))
    c = client(url)
    stream = c.chat.completions.create(
        model="majority-3/tiny",
        messages=[{"role": "user", "content": "3+4"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "3 + 4 = 7\nanswer: 7"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 18
    assert chunks[-1].usage.model_extra["testtime"]["strategy"] == "majority"

    chunks = list(c.completions.create(model="tiny", prompt="x", stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == "3 + 4 = 7\nanswer: 7"
    assert all(ch.usage is None for ch in chunks)  # usage only when asked for


def test_ffs_returns_the_first_finisher_and_cancels_the_rest(make_server) -> None:
    lengths = [12, 3, 20, 9]  # sample 1 finishes first
    gen = ScriptedGenerator(
        lambda p, c, i: " ".join(["s"] * lengths[i]) + f"\nanswer: {i}", token_delay=0.002
    )
    url = make_server(gen)
    chunks = list(
        client(url).chat.completions.create(
            model="ffs-4/tiny",
            messages=[{"role": "user", "content": "q"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.endswith("answer: 1")
    tt = chunks[-1].usage.model_extra["testtime"]
    assert tt["results"][0]["meta"]["cancelled"] == 3 and gen.cancelled_samples == 3


def test_unknown_strategy_lists_valid_names(make_server) -> None:
    c = client(make_server(ScriptedGenerator(majority_script)))
    msg = [{"role": "user", "content": "q"}]
    with pytest.raises(openai.NotFoundError, match="valid: .*majority") as err:
        c.chat.completions.create(model="telepathy-4/tiny", messages=msg)
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError, match="not served"):
        c.chat.completions.create(model="other-model", messages=msg)
    with pytest.raises(openai.BadRequestError, match="valid: .*majority"):
        c.chat.completions.create(model="tiny", messages=msg, extra_body={"strategy": "nope"})
    with pytest.raises(openai.BadRequestError, match="has no option 'bogus'"):
        c.chat.completions.create(
            model="majority-4/tiny", messages=msg, extra_body={"testtime": {"bogus": 1}}
        )
    with pytest.raises(openai.BadRequestError, match="needs a verifier"):
        c.chat.completions.create(model="best-of-4/tiny", messages=msg)


def test_authentication(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script), api_keys=["k1", "k2"])
    msg = [{"role": "user", "content": "q"}]
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(url, key="wrong").chat.completions.create(model="tiny", messages=msg)
    assert client(url, key="k2").chat.completions.create(model="tiny", messages=msg).choices
    r = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert httpx.get(f"{url}/v1/models").status_code == 401
    ids = [m.id for m in client(url, key="k1").models.list()]
    assert "tiny" in ids and "majority/tiny" in ids and "majority-16/tiny" in ids


def test_no_auth_only_on_loopback() -> None:
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    with pytest.raises(ValueError, match="loopback"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ValueError, match="no API key"):
        check_binding("0.0.0.0", [])


def test_input_validation_errors_are_openai_shaped(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script), limits=Limits(max_body_bytes=2000))
    auth = {"Authorization": f"Bearer {API_KEY}"}

    def post(body, **kw):
        return httpx.post(f"{url}/v1/chat/completions", headers=auth, **kw, json=body)

    big = post({"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    bad_json = httpx.post(f"{url}/v1/chat/completions", headers=auth, content=b"{nope")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    deep = httpx.post(f"{url}/v1/chat/completions", headers=auth, content=b"[" * 999 + b"]" * 999)
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"
    hot = post({"model": "tiny", "messages": [{"role": "user", "content": "q"}], "temperature": 9})
    err = hot.json()["error"]
    assert hot.status_code == 422 and err["param"] == "temperature"
    assert set(err) == {"message", "type", "param", "code"}
    no_msgs = post({"model": "tiny", "messages": []})
    assert no_msgs.status_code == 422 and no_msgs.json()["error"]["param"] == "messages"
    huge_n = post({"model": "majority-100000/tiny", "messages": [{"role": "user", "content": "q"}]})
    assert huge_n.status_code == 400 and huge_n.json()["error"]["code"] == "budget_too_large"
    unknown = httpx.post(f"{url}/v1/embeddings", headers=auth, json={})
    assert unknown.status_code == 404 and "unknown URL" in unknown.json()["error"]["message"]


def test_per_key_concurrency_limit(make_server) -> None:
    gen = ScriptedGenerator(lambda p, c, i: " ".join(["t"] * 40), token_delay=0.01)
    url = make_server(gen, limits=Limits(max_concurrency_per_key=1), api_keys=["a", "b"])
    results: dict[str, object] = {}

    def call(name: str, key: str) -> None:
        try:
            results[name] = client(url, key=key).completions.create(model="tiny", prompt="q")
        except openai.APIStatusError as err:
            results[name] = err

    first = threading.Thread(target=call, args=("first", "a"))
    first.start()
    time.sleep(0.15)  # the first request is generating
    call("second", "a")  # same key: refused
    call("other", "b")  # another key has its own slots
    first.join()
    assert isinstance(results["second"], openai.RateLimitError)
    assert not isinstance(results["first"], Exception)
    assert not isinstance(results["other"], Exception)
    call("after", "a")  # the slot was released
    assert not isinstance(results["after"], Exception)


def test_client_disconnect_cancels_upstream_work(make_server) -> None:
    gen = ScriptedGenerator(lambda p, c, i: " ".join(["t"] * 2000), token_delay=0.005)
    url = make_server(gen)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{url}/v1/completions",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "majority-4/tiny", "prompt": "q"},
            timeout=httpx.Timeout(5, read=0.3),
        )
    # 2000 tokens would take 10 s; the disconnect stops decoding well before.
    assert gen.finished.wait(timeout=3)
    assert time.monotonic() - started < 3
    assert gen.cancelled_samples == 4 and gen.calls == 1
    assert httpx.get(f"{url}/health").json()["inflight"] == 0


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (lambda: BackendError("upstream answered 500: boom"), 502, "upstream_error"),
        (lambda: BackendError("no reply"), 502, "upstream_error"),
        (lambda: json.JSONDecodeError("Expecting value", "<html>", 0), 502, "upstream_error"),
        (lambda: _timeout(), 504, "upstream_timeout"),
        (lambda: ZeroDivisionError("a bug"), 500, "internal_error"),
    ],
)
def test_upstream_faults_fail_one_request_only(make_server, caplog, fault, status, code) -> None:
    gen = ScriptedGenerator(majority_script, fail=fault)
    url = make_server(gen)
    r = httpx.post(
        f"{url}/v1/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "majority-2/tiny", "prompt": "q"},
    )
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert "a bug" not in r.text  # internal details stay internal ...
    if status == 500:  # ... but reach the server log
        assert "ZeroDivisionError: a bug" in caplog.text
    gen.fail = None
    assert client(url).completions.create(model="tiny", prompt="q").choices[0].text


def _timeout() -> BackendError:
    try:
        raise TimeoutError("read timed out")
    except TimeoutError as cause:
        err = BackendError("upstream did not answer in 30 s")
        err.__cause__ = cause
        return err


def test_upstream_key_is_never_echoed(make_server) -> None:
    secret = "sk-upstream-SECRET"
    gen = ScriptedGenerator(majority_script, fail=lambda: BackendError(f"401 for key {secret}"))
    url = make_server(gen, secrets=[secret])
    r = httpx.post(
        f"{url}/v1/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": "tiny", "prompt": "q"},
    )
    assert r.status_code == 502 and secret not in r.text and "***" in r.text


def test_openai_fields_stop_logprobs_system_and_warnings(make_server) -> None:
    gen = ScriptedGenerator(lambda p, c, i: f"saw {p.strip()}\nanswer: 7")
    url = make_server(gen)
    c = client(url)
    resp = c.completions.create(model="tiny", prompt="q", stop=["\n", "zzz"])
    assert resp.choices[0].text == "saw q" and resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == 3  # the whole candidate ("saw", "q\\nanswer:", "7")
    for extra in ({"logprobs": 2}, {"logprobs": 0}, {"echo": True}):
        with pytest.raises(openai.BadRequestError, match="not"):
            c.completions.create(model="tiny", prompt="q", **extra)
    with pytest.raises(openai.BadRequestError, match="logprobs are not available"):
        c.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "q"}], logprobs=True
        )
    chat = c.chat.completions.create(
        model="tiny",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "3+4"},
        ],
    )
    assert chat.choices[0].message.content == "saw 3+4\nanswer: 7"  # no system text in it
    assert "system/developer messages were not sent" in chat.model_extra["warning"]
    plain = c.completions.create(model="majority-4/tiny", prompt="q")
    assert "warning" not in plain.model_extra and plain.usage.model_extra["testtime"]["warnings"] == []
    for kwargs in ({"model": "majority-4/tiny"}, {"model": "tiny", "n": 2}):
        cold = c.completions.create(prompt="q", temperature=0, **kwargs)
        assert "temperature 0 decodes greedily" in cold.model_extra["warning"]
    first = next(iter(c.completions.create(model="tiny", prompt="q", n=2, temperature=0,
                                           stream=True, stop="\n")))
    assert "greedily" in first.model_extra["warning"] and first.choices[0].text == "saw q"


def test_plain_n_is_one_batched_call(make_server) -> None:
    gen = ScriptedGenerator(lambda p, c, i: f"sample {i}\nanswer: {i}")
    url = make_server(gen)
    resp = client(url).completions.create(model="tiny", prompt=["a", "b"], n=3, seed=5)
    assert [ch.text.split("\n")[0] for ch in resp.choices] == ["sample 0", "sample 1", "sample 2"] * 2
    tt = resp.usage.model_extra["testtime"]
    assert gen.calls == 1 and tt["compute"]["model_calls"] == 1 and tt["candidates"] == 6
    # the call's tokens are split over the six choices: each its own 3 completion tokens
    assert [r["compute"]["generated_tokens"] for r in tt["results"]] == [3] * 6


def test_oracle_without_a_task_says_what_to_send(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script))
    with pytest.raises(openai.BadRequestError, match='"task": "arith"'):
        client(url).completions.create(
            model="best-of-2/tiny", prompt="q", extra_body={"testtime": {"verifier": "oracle"}}
        )
