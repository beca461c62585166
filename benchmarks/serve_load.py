"""`testtime serve` under load and under upstream faults (loopback only, bounded).

1. load: 200 concurrent requests (half streaming, half not; half one sample,
   half ``majority-4``) against a stub upstream that takes ``--delay`` s per
   call. Goal: 0 errors. Reports p50/p99 latency and throughput.
2. faults: the same 200 requests while the upstream fails a share of calls
   (hangs past the upstream timeout, answers 500, resets the connection,
   returns non-JSON), once with the HTTP backend's retries (5 attempts) and
   once without (1 attempt). Every request must either succeed or get a clear
   OpenAI-style 502/504 error; the server must stay up.

    .venv/bin/python benchmarks/serve_load.py [--concurrency 200]

Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import httpx
from serve_common import RESULTS, cpu_seconds, start_serve, start_stub, stop, summary_ms

from testtime.store import atomic_write_json


def request_body(i: int) -> dict:
    return {
        "model": "stub" if i % 4 < 2 else "majority-4/stub",
        "prompt": f"arith: {i} +4\n",
        "max_tokens": 64,
        "stream": i % 2 == 1,
    }


async def one(client: httpx.AsyncClient, url: str, i: int) -> dict:
    body = request_body(i)
    start = time.perf_counter()
    try:
        r = await client.post(f"{url}/v1/completions", json=body)
        text = r.text
    except httpx.HTTPError as err:
        return {
            "ok": False,
            "clear": False,
            "status": None,
            "error": repr(err),
            "s": time.perf_counter() - start,
        }
    elapsed = time.perf_counter() - start
    if r.status_code == 200:
        if body["stream"]:
            ok = text.rstrip().endswith("data: [DONE]") and "answer: 7" in text
        else:
            ok = r.json()["choices"][0]["text"].endswith("answer: 7")
        return {"ok": ok, "clear": ok, "status": 200, "s": elapsed}
    try:
        err = r.json()["error"]
        clear = r.status_code in (502, 504) and bool(err["message"]) and "type" in err
    except (ValueError, KeyError, TypeError):
        err, clear = text[:200], False
    return {"ok": False, "clear": clear, "status": r.status_code, "error": err, "s": elapsed}


async def burst(url: str, n: int) -> tuple[list[dict], float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one(client, url, i) for i in range(n)))
        return list(results), time.perf_counter() - start


def phase(upstream_args: list[str], serve_args: list[str], n: int) -> dict:
    stub, upstream = start_stub(*upstream_args)
    serve = None
    try:
        serve, url = start_serve(upstream, "--upstream-model", "stub", *serve_args)
        cpu_before = cpu_seconds(serve.pid)
        results, wall = asyncio.run(burst(url, n))
        server_cpu = cpu_seconds(serve.pid) - cpu_before
        alive = httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
        injected = httpx.get(f"{upstream}/stats", timeout=5).json()
        after = httpx.post(
            f"{url}/v1/completions", timeout=30, json={"model": "stub", "prompt": "q\n"}
        ).status_code
    finally:
        stop(stub, *([serve] if serve else []))
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    statuses: dict[str, int] = {}
    for r in failed:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return {
        "requests": n,
        "upstream_calls": injected,
        "succeeded": len(ok),
        "errors": len(failed),
        "errors_by_status": statuses,
        "unclear_errors": sum(not r["clear"] for r in failed),
        "unclear_examples": [r.get("error") for r in failed if not r["clear"]][:5],
        "latency_ok": summary_ms([r["s"] for r in ok]) if ok else None,
        "latency_failed": summary_ms([r["s"] for r in failed]) if failed else None,
        "wall_s": round(wall, 3),
        "throughput_rps": round(n / wall, 1),
        # Machine-load-independent cost: CPU the server process spent per request.
        "server_cpu_ms_per_request": round(1000 * server_cpu / n, 2),
        # Still serving: healthy, and a fresh request is answered (a success, or with a
        # faulty upstream possibly a clear 502/504).
        "server_alive_after": alive and after in (200, 502, 504),
        "status_of_a_request_after": after,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.05, help="upstream seconds per call")
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--upstream-timeout", type=float, default=2.0)
    args = ap.parse_args()
    serve_args = [
        "--workers",
        str(args.concurrency),
        "--max-concurrency-per-key",
        str(args.concurrency),
        "--upstream-timeout",
        str(args.upstream_timeout),
    ]
    faulty = [
        "--delay",
        str(args.delay),
        "--fault-rate",
        str(args.fault_rate),
        "--hang-s",
        str(args.upstream_timeout + 5),
    ]
    load = phase(["--delay", str(args.delay)], serve_args, args.concurrency)
    faults = {
        f"attempts_{attempts}": phase(
            faulty, [*serve_args, "--upstream-attempts", str(attempts)], args.concurrency
        )
        for attempts in (5, 1)
    }
    result = {
        "benchmark": "serve_load",
        "concurrency": args.concurrency,
        "mix": "1/2 streaming, 1/2 majority-4, all at once",
        "upstream_delay_s": args.delay,
        # 2 shared cores: other jobs' load inflates every latency here.
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "load": load,
        "faults": {
            "fault_rate": args.fault_rate,
            "kinds": ["timeout", "500", "drop", "garbage"],
            "upstream_timeout_s": args.upstream_timeout,
            **faults,
        },
    }
    atomic_write_json(RESULTS / "serve_load.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
