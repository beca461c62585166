"""Hostile input against a real server on loopback (127.0.0.1): every probe is
refused with a 4xx and a message, loses nothing, and leaves nothing running.
Bounded in count and time (the scripted generator; small timeouts)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from testtime.serve.limits import Limits
from testtime.serve.options import Resources

from .scripted import API_KEY, ScriptedGenerator, client, majority_script

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SOLUTION = "3+4=7\n7*2=14\nanswer: 14"
ARITH = "arith: 3 +4 *2\n"


def post(url: str, body: dict, *, path: str = "/v1/completions", **kw) -> httpx.Response:
    return httpx.post(f"{url}{path}", headers=AUTH, json=body, timeout=kw.pop("timeout", 30), **kw)


def _error(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and (code is None or err["code"] == code), err
    return err["message"]


def test_request_options_never_touch_the_file_system(make_server, tmp_path) -> None:
    url = make_server(ScriptedGenerator(lambda p, c, i: SOLUTION))
    target = tmp_path / "made" / "bank.json"
    r = post(url, {"model": "tiny", "prompt": ARITH, "testtime": {
        "strategy": "r2-mcts", "bank": str(target), "task": "arith", "verifier": "oracle"}})
    assert "never accepted" in _error(r, 400, "invalid_resource")
    assert not (tmp_path / "made").exists()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"db_password_key": 1}))
    r = post(url, {"model": "compute-optimal/tiny", "prompt": ARITH, "testtime": {
        "policy": str(secret), "task": "arith", "verifier": "oracle"}})
    _error(r, 400, "invalid_resource")
    assert "db_password_key" not in r.text and str(secret) not in r.text
    for option in ({"aggregation": "/etc/passwd"}, {"seed": "/etc/passwd"}):
        r = post(url, {"model": "majority-2/tiny", "prompt": "q", "testtime": option})
        _error(r, 400, "invalid_option")


def test_operator_resources_are_used_by_name_and_never_shown(make_server, tmp_path) -> None:
    bank = tmp_path / "banks" / "arith.json"
    bank.parent.mkdir()
    resources = Resources.from_specs([f"bank=arith:{bank}"])
    url = make_server(ScriptedGenerator(lambda p, c, i: SOLUTION), resources=resources)
    body = {"model": "r2-mcts-2/tiny", "prompt": ARITH,
            "testtime": {"bank": "arith", "task": "arith", "verifier": "oracle"}}
    r = post(url, body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["testtime"]["options"]["bank"] == "arith"
    assert str(tmp_path) not in r.text
    # The oracle scored the solution 1.0 >= accept: it was banked in the operator's file.
    assert json.loads(bank.read_text())[0]["solution"] == SOLUTION
    bank.write_text("not json")  # a broken resource: the error names it, not its path
    r = post(url, body)
    assert "<bank:arith>" in _error(r, 400) and str(tmp_path) not in r.text


@pytest.mark.parametrize("strategy", ["r2-mcts", "compute-optimal"])
def test_resource_options_need_a_declared_name(make_server, strategy: str) -> None:
    url = make_server(ScriptedGenerator(lambda p, c, i: SOLUTION))
    key = "bank" if strategy == "r2-mcts" else "policy"
    r = post(url, {"model": f"{strategy}/tiny", "prompt": ARITH, "testtime": {key: "arith"}})
    assert "declared: none" in _error(r, 400, "invalid_resource")


def _raw(url: str, data: bytes, *, wait: float = 5.0, trickle: bytes = b"") -> tuple[bytes, float]:
    """Send ``data`` (then ``trickle`` a byte per 0.1 s) on a raw socket; return what the
    server answered before it closed the connection, and after how many seconds."""
    host, port = url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(data)
        for byte in trickle:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed by the server
                break
            time.sleep(0.1)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return out, time.monotonic() - start


def _flood(url: str, head: bytes, size: int) -> tuple[int, float]:
    """Send ``head`` and then up to ``size`` header bytes; (bytes sent, seconds) until refused."""
    host, port = url.removeprefix("http://").split(":")
    start, sent, chunk = time.monotonic(), 0, b"x" * 65536
    with socket.create_connection((host, int(port)), timeout=1) as sock:
        sock.sendall(head)
        try:
            while sent < size:
                sent += sock.send(chunk)
            answer = sock.recv(64)
        except OSError:  # reset by the server, or our send blocked (it stopped reading)
            answer = b""
    assert answer in (b"",) or answer.startswith(b"HTTP/1.1 431"), answer
    return sent, time.monotonic() - start


FAST = Limits(header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=0.5, max_header_bytes=8192)
HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode()


def test_slow_and_oversized_requests_are_cut_off(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script), limits=FAST)
    out, took = _raw(url, b"")  # connects, sends nothing
    assert out.startswith(b"HTTP/1.1 408") and took < 2
    out, took = _raw(url, HEAD, trickle=b"\r\nX-Slow: " + b"a" * 100)  # slowloris head
    assert out.startswith(b"HTTP/1.1 408") and took < 2
    stalled = HEAD + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo"
    out, took = _raw(url, stalled)  # answered 408, and closed at once
    assert out.startswith(b"HTTP/1.1 408") and b"request_timeout" in out and took < 1.5
    # A 50 MB Authorization header: refused (431, or a reset when the refusal is lost to
    # the unread data) after ~8 KB; the server stops reading, so the send stalls early.
    sent, took = _flood(url, HEAD, 50 << 20)
    assert sent < 16 << 20 and took < 3
    # The server still answers normal requests, and nothing is left in flight.
    assert post(url, {"model": "tiny", "prompt": "q"}).status_code == 200
    assert httpx.get(f"{url}/health").json()["inflight"] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "self-refine-1000000/tiny", "prompt": "q"}, 400, "request_too_expensive"),
        ({"model": "majority-256/tiny", "prompt": ["q"] * 5000, "n": 64}, 400, "too_many_prompts"),
        ({"model": "majority-256/tiny", "prompt": ["q"] * 64}, 400, "request_too_expensive"),
        ({"model": "tiny", "prompt": "q" * 1_000_000}, 413, "prompt_too_long"),
        ({"model": "tiny", "prompt": "q", "max_tokens": 10**9}, 400, "max_tokens_too_large"),
        ({"model": "compute-optimal/tiny", "prompt": "q", "testtime": {"verifier": "oracle"}},
         400, "request_too_expensive"),
        ({"model": "tiny", "prompt": "q", "testtime": {"verifier": "judge"}}, 400, None),
        ({"model": "best-of-2/tiny", "prompt": "q", "testtime": {"verifier": "judge"}}, 400, None),
        ({"model": "majority-2/tiny", "prompt": ARITH, "testtime": {"task": "countdown"}},
         400, "invalid_prompt"),
        ({"model": "iterative-deepening/tiny", "prompt": "q", "testtime": {"initial": 0}},
         400, "invalid_option"),
    ],
)
def test_bad_work_is_refused_before_it_starts(make_server, body, status, code) -> None:
    gen = ScriptedGenerator(majority_script)
    url = make_server(gen, limits=Limits(max_body_bytes=2 << 20, max_request_tokens=1 << 16))
    _error(post(url, body), status, code)
    assert gen.calls == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"model": "tiny", "prompt": "a\\ud800b"}', "invalid_text"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "\\udfff"}]}', "invalid_text"),
        (b'{"model": "tiny", "prompt": "q", "temperature": NaN}', "invalid_json"),
        (b'{"model": "tiny", "prompt": "q", "top_p": Infinity}', "invalid_json"),
        (b'{"model": "tiny", "prompt": "\xff\xfe"}', "invalid_json"),
    ],
)
def test_invalid_text_is_a_400(make_server, raw: bytes, code: str) -> None:
    url = make_server(ScriptedGenerator(majority_script))
    path = "/v1/chat/completions" if b"messages" in raw else "/v1/completions"
    r = httpx.post(f"{url}{path}", headers=AUTH, content=raw)
    _error(r, 400, code)


def test_prompt_beyond_the_context_window_is_a_400(make_server) -> None:
    gen = ScriptedGenerator(majority_script)
    gen.n_positions = 8  # an in-process model's context, in (whitespace) tokens
    url = make_server(gen)
    msg = _error(post(url, {"model": "tiny", "prompt": "w " * 20}), 400, "context_length_exceeded")
    assert "20 tokens" in msg and gen.calls == 0


def test_key_slot_is_held_until_the_worker_ends(make_server) -> None:
    release = threading.Event()

    def stuck(prompt: str, call: int, i: int) -> str:  # not cancellable: holds its thread
        release.wait(10)
        return "answer: 1"

    gen = ScriptedGenerator(stuck)
    url = make_server(gen, limits=Limits(max_concurrency_per_key=1))
    with pytest.raises(httpx.ReadTimeout):
        post(url, {"model": "self-refine-3/tiny", "prompt": "q"}, timeout=0.3)
    # The client left, but its worker still runs: the key's one slot is still taken.
    _error(post(url, {"model": "tiny", "prompt": "q"}), 429, "concurrency_limit_exceeded")
    release.set()
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/health").json()["inflight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert httpx.get(f"{url}/health").json()["inflight"] == 0
    assert gen.calls == 1  # cancelled: no further turn of self-refine started
    assert post(url, {"model": "tiny", "prompt": "q"}).status_code == 200


def test_a_busy_key_does_not_starve_another(make_server) -> None:
    # An in-process model (serialize): calls take turns round-robin over keys.
    gen = ScriptedGenerator(lambda p, c, i: " ".join(["t"] * 20), token_delay=0.01)
    url = make_server(gen, serialize=True, api_keys=["a", "b"])
    busy = [
        threading.Thread(target=client(url, key="a").completions.create,
                         kwargs={"model": "self-refine-10/tiny", "prompt": f"q{i}"})
        for i in range(2)
    ]
    for t in busy:
        t.start()
    time.sleep(0.1)
    start = time.monotonic()
    client(url, key="b").completions.create(model="tiny", prompt="other")
    waited = time.monotonic() - start
    for t in busy:
        t.join()
    # One call of key a (~0.2 s) may be ahead of b's (~0.2 s), not the rest of a's
    # request (ten calls, ~2 s: what a lock held per request makes b wait, >= 2.1 s).
    assert waited < 1.4, waited
    assert gen.calls == 2 * 10 + 1


def test_connections_beyond_the_limit_get_a_503(make_server) -> None:
    url = make_server(ScriptedGenerator(majority_script), limits=Limits(max_connections=2))
    host, port = url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(2)]
    try:
        time.sleep(0.1)
        assert post(url, {"model": "tiny", "prompt": "q"}).status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.1)
    assert post(url, {"model": "tiny", "prompt": "q"}).status_code == 200


def test_a_request_past_the_deadline_is_stopped(make_server) -> None:
    gen = ScriptedGenerator(lambda p, c, i: " ".join(["t"] * 2000), token_delay=0.005)
    url = make_server(gen, limits=Limits(request_timeout_s=0.3))
    start = time.monotonic()
    r = post(url, {"model": "majority-2/tiny", "prompt": "q"})
    assert "--request-timeout" in _error(r, 504, "request_timeout")
    assert time.monotonic() - start < 2
    assert gen.finished.wait(2) and gen.cancelled_samples == 2  # the work was stopped too
