"""Hostile input against a real server on loopback (127.0.0.1): every probe is
refused with a 4xx and a message, loses nothing, and leaves nothing running.
Bounded in count and time (the scripted generator; small timeouts)."""

from __future__ import annotations

import json

import httpx
import pytest

from testtime.serve.options import Resources

from .scripted import API_KEY, ScriptedGenerator

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
