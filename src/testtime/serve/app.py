"""The OpenAI-compatible test-time-compute server (``testtime serve``).

``POST /v1/chat/completions`` and ``POST /v1/completions`` run a test-time
strategy per request (chosen by model-name prefix or a ``testtime`` body object,
see :mod:`testtime.serve.routing`) on one upstream :class:`Generator`;
``GET /v1/models`` lists the names; ``GET /health`` needs no key.

Streaming (SSE, OpenAI chunk format, ``data: [DONE]``) sends the answer the
moment the strategy has decided it: the Generator interface reports finished
samples, not tokens, so there is nothing correct to stream earlier. For ``ffs``
that moment is the first sample's EOS (the other samples are cancelled
mid-decode). Errors before the decision keep their HTTP status (e.g. 502), as
nothing has been sent yet.

A request is checked before any work, in this order: its key, its body (size,
time, valid text: :mod:`~testtime.serve.admission`), its fields, its strategy
and options (types; files only as operator resources: :mod:`~testtime.serve.options`),
its estimated cost (:mod:`~testtime.serve.limits`), then its key's concurrency
slot. ``usage`` counts every token spent (:mod:`~testtime.serve.outcome`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from testtime.backends.base import CancelToken, Generator
from testtime.scale.base import STRATEGIES
from testtime.serve.admission import KeyLimiter, read_body, validation_error
from testtime.serve.engine import Engine
from testtime.serve.errors import APIError, Redactor
from testtime.serve.guarded import RequestCancelled
from testtime.serve.limits import Limits, check_request
from testtime.serve.options import Resources
from testtime.serve.protocol import (
    ChatRequest,
    CompletionRequest,
    apply_stop,
    response_body,
    stream_chunks,
)
from testtime.serve.routing import make_plan, sampling_warnings, strategy_names

log = logging.getLogger("testtime.serve")

_ANONYMOUS = "anonymous"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_keys: Sequence[str] | None) -> None:
    """Refuse to serve without keys anywhere but loopback."""
    if api_keys is None and not is_loopback(host):
        raise ValueError(
            f"--no-auth is only allowed on a loopback host (127.0.0.1, ::1, localhost), not {host!r}"
        )
    if api_keys is not None and not api_keys:
        raise ValueError(
            "no API key given: use --api-key, --api-key-env or --api-key-file "
            "(or --no-auth on a loopback host)"
        )


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(
    generator: Generator,
    *,
    model_name: str | None = None,
    api_keys: Sequence[str] | None = None,
    limits: Limits | None = None,
    default_verifier: str | None = None,
    serialize: bool = False,
    max_workers: int = 64,
    secrets: Sequence[str] = (),
    resources: Resources | None = None,
) -> FastAPI:
    """The server app over ``generator``. ``api_keys=None`` disables authentication
    (the CLI allows that on loopback only); ``secrets`` (upstream keys) are
    redacted from every error message; ``resources`` are the named files (banks,
    policies) requests may use (:mod:`testtime.serve.options`); ``limits`` bound
    every request's work (:mod:`testtime.serve.limits`)."""
    limits = limits or Limits()
    served = model_name or generator.name
    keys = None if api_keys is None else [k.encode() for k in api_keys]
    resources = resources or Resources()
    redact = Redactor(tuple(secrets), resources.redactions())
    engine = Engine(
        generator,
        redact=redact,
        default_verifier=default_verifier,
        serialize=serialize,
        max_workers=max_workers,
        resources=resources,
    )
    limiter = KeyLimiter(limits.max_concurrency_per_key)
    # The model's context window, where the backend knows it (in-process models).
    context = getattr(generator, "n_positions", None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # An async-capable upstream (the HTTP backend) runs its connection pool on the
        # server's own loop: no private loop thread to hop to and back per call.
        adopt = getattr(generator, "adopt_running_loop", None)
        if adopt is not None:
            await adopt()
        try:
            yield
        finally:
            if adopt is not None:
                await generator.aclose()

    app = FastAPI(
        title="testtime serve",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.engine, app.state.limiter, app.state.limits = engine, limiter, limits

    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> JSONResponse:
        # A body left unread (too slow, too large): the connection cannot be reused.
        close = {"Connection": "close"} if err.status in (408, 413) else None
        return JSONResponse(err.body(), status_code=err.status, headers=close)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = (
            f"unknown URL: {request.method} {request.url.path}"
            if err.status_code == 404
            else str(err.detail)
        )
        return JSONResponse(APIError(err.status_code, message).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.error("unexpected error: %s", redact(repr(err)))
        return JSONResponse(APIError(500, "internal server error").body(), status_code=500)

    def authenticate(request: Request) -> str:
        if keys is None:
            return _ANONYMOUS
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        given = token.strip().encode()
        # Compare against every key in constant time; the key's index names its slot.
        matches = [i for i, k in enumerate(keys) if hmac.compare_digest(given, k)]
        if not matches:
            raise APIError(401, "invalid API key", code="invalid_api_key")
        return f"key-{matches[0]}"

    async def run(request: Request, kind: str) -> Response:
        key = authenticate(request)
        try:
            data = await read_body(request, limits)
        except RequestCancelled:
            return Response(status_code=499)
        schema = ChatRequest if kind == "chat" else CompletionRequest
        try:
            req = schema.model_validate(data)
        except ValidationError as err:
            raise validation_error(err) from None
        req.check_supported()
        plan = make_plan(
            req.model,
            served,
            req.testtime_options(),
            req.sampling(),
            max_n=limits.max_n,
            resources=resources,
        )
        check_request(limits, plan, req.prompts(), req.n, generator.count_tokens, context)
        warnings = req.warnings() + sampling_warnings(plan, req.n)
        limiter.acquire(key)
        cancel = CancelToken()
        try:
            work = engine.executor.submit(engine.run, plan, req.prompts(), cancel, key, req.n)
        except BaseException:
            limiter.release(key)
            raise
        # The slot is held until the worker really stops, not merely until the client leaves.
        limiter.hold_until_done(key, work)
        job = asyncio.wrap_future(work)
        job.add_done_callback(lambda f: f.cancelled() or f.exception())  # read if abandoned
        watcher = asyncio.ensure_future(_wait_disconnect(request))
        timed_out = False
        try:
            done, _ = await asyncio.wait(
                {job, watcher},
                timeout=limits.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            timed_out = not done
        finally:
            watcher.cancel()
            if not job.done():  # client gone, deadline passed or shutdown: stop the work
                cancel.cancel()
                work.cancel()  # a job still queued never starts
        if timed_out:
            raise APIError(
                504,
                f"the request ran past this server's limit of {limits.request_timeout_s:g} s "
                "(--request-timeout) and was stopped",
                code="request_timeout",
            )
        if not job.done() or job.cancelled():
            return Response(status_code=499)
        try:
            outcome = job.result()
        except RequestCancelled:
            return Response(status_code=499)
        apply_stop(outcome, req.stop)
        outcome.warnings = outcome.usage["testtime"]["warnings"] = warnings
        if not req.stream:
            return JSONResponse(response_body(kind, req.model, outcome))
        chunks = stream_chunks(kind, req.model, outcome, req.include_usage)

        async def events():
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await run(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await run(request, "completion")

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authenticate(request)
        ids = [served]
        for name in strategy_names():
            ids.append(f"{name}/{served}")
            if getattr(STRATEGIES.get(name), "budget_param", "n") == "n":
                ids.append(f"{name}-16/{served}")  # e.g. majority-16: 16 samples
        return {
            "object": "list",
            "data": [
                {"id": i, "object": "model", "created": 0, "owned_by": "testtime"} for i in ids
            ],
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served, "inflight": sum(limiter.inflight.values())}

    return app
