"""A small OpenAI-compatible HTTP server for tests: FastAPI + uvicorn on loopback,
serving ``/v1/completions`` and ``/v1/chat/completions`` (streaming) from any
:class:`~testtime.backends.base.Generator` (the tests use the tiny random GPT-2).

``llama_like`` makes it answer as llama-cpp-python's server does: ``n`` ignored (one
choice), no ``stop_reason``, no usage in streams; ``interrupt`` (with it) ends a running
stream with ``[DONE]`` when another request arrives (``--interrupt_requests true``).
Otherwise it answers as vLLM (``stop_reason`` on every finished choice).

Faults are scripted per request (``server.faults.append(...)``): an HTTP status
with headers, a stall longer than the client's timeout, or a malformed stream.
``server.stats`` records what the server saw (requests, streams the client
closed early, chunks sent)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from testtime.backends.base import Generator, SamplingParams


@dataclass
class Fault:
    """What the server does with the next request instead of (or before) serving it."""

    status: int | None = None  # answer with this HTTP status
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0  # sleep before answering (client timeout tests)
    malformed: bool = False  # stream a chunk that is not JSON
    one_choice: bool = False  # ignore n, like servers without n > 1 support


@dataclass
class Stats:
    requests: int = 0
    served: int = 0
    closed_early: int = 0
    chunks_sent: int = 0
    bodies: list[dict] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)  # one per request: connection reuse


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status)


class StubServer:
    def __init__(
        self,
        generator: Generator,
        *,
        model: str = "tiny",
        api_key: str = "sk-test-123",
        token_delay_s: float = 0.0,
    ) -> None:
        self.generator, self.model, self.api_key = generator, model, api_key
        self.token_delay_s = token_delay_s
        self.reject_stream_options = False  # answer 400, as servers predating the field do
        self.reject_fields: set[str] = set()  # answer 400 naming these, as OpenAI does
        # answer 500 naming a field with this value, as llama-cpp-python does for top_k=-1
        self.reject_values: dict[str, object] = {}
        self.llama_like = False
        self.logprobs = True  # False: never send logprobs
        self.honour_seed = True
        self.interrupt = False
        self._inflight = 0  # requests received and not answered to the end
        self.faults: deque[Fault] = deque()
        self.stats = Stats()
        self.app = FastAPI()
        self.app.post("/v1/completions")(self._completions)
        self.app.post("/v1/chat/completions")(self._chat)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----
    def start(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="error", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stub server did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # ---- endpoints ----
    async def _completions(self, request: Request):
        return await self._serve(request, chat=False)

    async def _chat(self, request: Request):
        return await self._serve(request, chat=True)

    async def _serve(self, request: Request, chat: bool):
        self.stats.requests += 1
        self._inflight += 1
        try:
            return await self._answer(request, chat)
        finally:
            self._inflight -= 1

    async def _answer(self, request: Request, chat: bool):
        fault = self.faults.popleft() if self.faults else Fault()
        if fault.stall_s:
            await asyncio.sleep(fault.stall_s)
        if fault.status is not None:
            return JSONResponse(
                {"error": {"message": f"injected {fault.status}"}},
                fault.status,
                headers=fault.headers,
            )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided")
        body = await request.json()
        self.stats.bodies.append(body)
        self.stats.client_ports.append(request.client.port if request.client else -1)
        if self.reject_stream_options and "stream_options" in body:
            return _error(400, "Unrecognized request argument supplied: stream_options")
        bad = [k for k, v in self.reject_values.items() if body.get(k) == v]
        if bad:
            return _error(500, f"1 validation error: ('body', '{bad[0]}') must be >= 0")
        refused = sorted(self.reject_fields & set(body))
        if refused:
            return _error(400, f"Unrecognized request argument supplied: {', '.join(refused)}")
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        params = SamplingParams(
            n=body.get("n", 1),
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            max_tokens=body.get("max_tokens", 16),
            stop=tuple(body.get("stop") or ()),
            seed=body.get("seed") if self.honour_seed else None,
            logprobs=True,
        )
        result = await asyncio.to_thread(self.generator.generate, [prompt], params)
        usage = {
            # As servers report it: the whole prompt, prefix-cache hits included.
            "prompt_tokens": result.usage.prompt_tokens + result.usage.cached_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "total_tokens": result.usage.total_tokens + result.usage.cached_tokens,
        }
        want_lp = bool(body.get("logprobs")) and self.logprobs
        one = fault.one_choice or self.llama_like
        comps = result.completions[0][:1] if one else result.completions[0]
        if "stream_options" not in body or self.llama_like:
            usage = None
        return StreamingResponse(
            self._stream(comps, usage, chat, want_lp, fault.malformed),
            media_type="text/event-stream",
        )

    async def _stream(
        self, comps, usage: dict, chat: bool, want_lp: bool, malformed: bool
    ) -> AsyncIterator[str]:
        self.stats.served += 1
        self._inflight += 1
        try:
            if malformed:
                yield 'data: {"choices": [ this is not json\n\n'
                return
            # One token per chunk, choices interleaved like a real server.
            longest = max(c.num_tokens for c in comps)
            for t in range(longest):
                for k, c in enumerate(comps):
                    if t >= c.num_tokens:
                        continue
                    last = t == c.num_tokens - 1
                    # Char-level model: token t is character t of the text (EOS has none).
                    piece = c.text[t] if t < len(c.text) else ""
                    lp = c.token_logprobs[t]
                    choice: dict = {"index": k, "finish_reason": c.finish_reason if last else None}
                    if chat:
                        choice["delta"] = {"content": piece}
                        if want_lp:
                            choice["logprobs"] = {"content": [{"token": piece, "logprob": lp}]}
                    else:
                        choice["text"] = piece
                        if want_lp:
                            choice["logprobs"] = {"tokens": [piece], "token_logprobs": [lp]}
                    if last and not self.llama_like:
                        choice["stop_reason"] = c.stop_string
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n"
                    self.stats.chunks_sent += 1
                    if self.interrupt and self._inflight > 1:
                        yield "data: [DONE]\n\n"  # llama-cpp-python's interrupt_requests
                        return
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
            if usage is not None:
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            self.stats.closed_early += 1
            raise
        finally:
            self._inflight -= 1

