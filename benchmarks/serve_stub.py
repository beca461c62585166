"""An OpenAI-compatible upstream for the serve benchmarks, on loopback, with fault injection.

A minimal asyncio HTTP/1.1 server (keep-alive, chunked SSE streaming) so its own
overhead is small and every fault is exact: ``timeout`` (never answers),
``500`` (an OpenAI-style error), ``drop`` (the connection is reset without a
reply) and ``garbage`` (200 with a body that is not JSON). Every sample is the
fixed solution ``TEXT``, one token per whitespace-separated word.

    python benchmarks/serve_stub.py --port 0 [--delay 0.02] [--fault-rate 0.2]

prints ``READY <port>`` once listening; ``GET /v1/stats`` counts the calls per outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

TEXT = "3 + 4 = 7\nanswer: 7"
FAULTS = ("timeout", "500", "drop", "garbage")


class Stub:
    def __init__(self, delay: float, fault_rate: float, seed: int, hang_s: float) -> None:
        self.delay = delay
        self.fault_rate = fault_rate
        self.hang_s = hang_s
        self.rng = random.Random(seed)
        self.counts = {"ok": 0, **{f: 0 for f in FAULTS}}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if not await self.respond(method, path, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def respond(self, method: str, path: str, body: bytes, w: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must end."""
        if method == "GET" and path.endswith("/stats"):  # what the stub has injected so far
            self.send(w, 200, self.counts)
            return True
        if method == "GET" and path.endswith("/models"):
            self.send(w, 200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
            return True
        if method != "POST" or not path.endswith("/completions"):
            self.send(w, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return True
        fault = self.rng.choice(FAULTS) if self.rng.random() < self.fault_rate else None
        self.counts[fault or "ok"] += 1
        if fault == "timeout":
            await asyncio.sleep(self.hang_s)
            return False
        if fault == "drop":
            w.transport.abort()
            return False
        await asyncio.sleep(self.delay)  # "generation"
        if fault == "500":
            self.send(w, 500, {"error": {"message": "stub failure", "type": "server_error"}})
            return True
        if fault == "garbage":
            self.raw(w, 200, b"<html>502 Bad Gateway</html>", "application/json")
            return True
        req = json.loads(body)
        chat = path.endswith("/chat/completions")
        if req.get("stream"):
            await self.stream(w, req, chat)
        else:
            self.send(w, 200, completion(req, chat))
        await w.drain()
        return True

    def raw(self, w: asyncio.StreamWriter, status: int, data: bytes, ctype: str) -> None:
        w.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}"
            "\r\n\r\n".encode()
            + data
        )

    def send(self, w: asyncio.StreamWriter, status: int, obj: dict) -> None:
        self.raw(w, status, json.dumps(obj).encode(), "application/json")

    async def stream(self, w: asyncio.StreamWriter, req: dict, chat: bool) -> None:
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )

        def chunk(obj: dict | str) -> None:
            data = f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()
            w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        words = TEXT.split(" ")
        for i in range(int(req.get("n") or 1)):
            for j, word in enumerate(words):
                piece = word if j == 0 else " " + word
                last = j == len(words) - 1
                choice = {"index": i, "finish_reason": "stop" if last else None}
                if chat:
                    choice["delta"] = {"content": piece}
                else:
                    choice["text"] = piece
                    choice["logprobs"] = (
                        {"tokens": [piece], "token_logprobs": [-0.1]}
                        if req.get("logprobs") is not None
                        else None
                    )
                chunk({"id": "stub", "object": "chunk", "model": "stub", "choices": [choice]})
        chunk(
            {"id": "stub", "object": "chunk", "model": "stub", "choices": [], "usage": usage(req)}
        )
        chunk("[DONE]")
        w.write(b"0\r\n\r\n")


def usage(req: dict) -> dict:
    prompt = req.get("prompt") or " ".join(m.get("content", "") for m in req.get("messages", []))
    n = int(req.get("n") or 1)
    p, c = len(str(prompt).split()), len(TEXT.split(" ")) * n
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion(req: dict, chat: bool) -> dict:
    n = int(req.get("n") or 1)
    words = TEXT.split(" ")
    choices = []
    for i in range(n):
        if chat:
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": TEXT},
                    "finish_reason": "stop",
                }
            )
        else:
            lp = None
            if req.get("logprobs") is not None:
                toks = [w if j == 0 else " " + w for j, w in enumerate(words)]
                lp = {"tokens": toks, "token_logprobs": [-0.1] * len(toks)}
            choices.append({"index": i, "text": TEXT, "finish_reason": "stop", "logprobs": lp})
    return {
        "id": "stub",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": req.get("model", "stub"),
        "choices": choices,
        "usage": usage(req),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds per request")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--hang-s", type=float, default=30.0, help="how long a 'timeout' hangs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    stub = Stub(args.delay, args.fault_rate, args.seed, args.hang_s)
    server = await asyncio.start_server(stub.handle, "127.0.0.1", args.port, backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
