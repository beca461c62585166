"""Overhead `testtime serve` adds to a single-sample request (goal: <= 5 ms at p50).

The same single-sample completion request is sent, alternately, straight to an
OpenAI-compatible upstream stub on loopback and through `testtime serve` (plain
model name = one sample) in front of that stub; the stub answers at once, so
the difference is the server's cost (HTTP hop, validation, strategy set-up,
the upstream HTTP client). To tell the two apart, the same upstream HTTP client
(``OpenAIGenerator``, what the server uses) is also timed on its own, in this
process. Sequential requests, one keep-alive connection each.

    .venv/bin/python benchmarks/serve_latency.py [--requests 400]

Writes benchmarks/results/serve_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import httpx
from serve_common import RESULTS, cpu_seconds, start_serve, start_stub, stop, summary_ms

from testtime.backends import get_generator
from testtime.backends.base import SamplingParams
from testtime.serve.server import use_uvloop
from testtime.store import atomic_write_json

PROMPT = "arith: 3 +4\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    use_uvloop()  # the upstream client timed alone runs as it does inside the server
    stub, upstream = start_stub()
    serve = None
    try:
        serve, url = start_serve(upstream, "--upstream-model", "stub")
        # The plain model name: one sample, the same request either way.
        body = {"model": "stub", "prompt": PROMPT, "max_tokens": 64, "temperature": 0.8}
        times: dict[str, list[float]] = {"direct": [], "served": [], "generator": []}
        generator = get_generator(f"openai:{upstream}", model="stub")
        params = SamplingParams(max_tokens=64, temperature=0.8)
        with httpx.Client(timeout=30) as direct, httpx.Client(timeout=30) as served:
            targets = {
                "direct": (direct, f"{upstream}/completions"),
                "served": (served, f"{url}/v1/completions"),
            }
            for i in range(args.warmup + args.requests):
                if i == args.warmup:
                    cpu_before = cpu_seconds(serve.pid)
                for name, (client, endpoint) in targets.items():
                    start = time.perf_counter()
                    r = client.post(endpoint, json=body)
                    elapsed = time.perf_counter() - start
                    r.raise_for_status()
                    assert r.json()["choices"][0]["text"].endswith("answer: 7")
                    if i >= args.warmup:
                        times[name].append(elapsed)
                start = time.perf_counter()
                generator.generate([PROMPT], params)
                if i >= args.warmup:
                    times["generator"].append(time.perf_counter() - start)
        server_cpu = cpu_seconds(serve.pid) - cpu_before
        direct_s, served_s = summary_ms(times["direct"]), summary_ms(times["served"])
        generator_s = summary_ms(times["generator"])
        result = {
            "benchmark": "serve_latency",
            "requests": args.requests,
            "direct": direct_s,
            "served": served_s,
            "upstream_client_alone": generator_s,
            "overhead_p50_ms": round(served_s["p50_ms"] - direct_s["p50_ms"], 3),
            "overhead_p99_ms": round(served_s["p99_ms"] - direct_s["p99_ms"], 3),
            # Of which the upstream HTTP client (streaming, its event-loop thread) costs:
            "upstream_client_overhead_p50_ms": round(generator_s["p50_ms"] - direct_s["p50_ms"], 3),
            # ... and the server itself (HTTP stack, validation, routing, worker hop):
            "server_app_overhead_p50_ms": round(served_s["p50_ms"] - generator_s["p50_ms"], 3),
            "goal_p50_ms": 5.0,
            "server_cpu_ms_per_request": round(1000 * server_cpu / args.requests, 3),
            "machine": f"{platform.machine()}, {platform.python_version()}",
            # 2 shared cores: other jobs' load inflates every latency here.
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
        result["meets_goal"] = result["overhead_p50_ms"] <= 5.0
        atomic_write_json(RESULTS / "serve_latency.json", result)
        print(json.dumps(result, indent=2))
    finally:
        stop(stub, *([serve] if serve else []))


if __name__ == "__main__":
    main()
