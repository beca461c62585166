"""Admitting a request: its body read under size and time limits, and per-key slots.

The body must arrive within ``body_timeout_s`` (408) and stay under
``max_body_bytes`` (413); it must be a JSON object without NaN/Infinity and
without lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but no text a model
can read): both are 400s. A key's concurrency slot is held until its worker
thread really ends, not merely until the client leaves.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from testtime.serve.errors import APIError
from testtime.serve.guarded import RequestCancelled
from testtime.serve.limits import Limits


class KeyLimiter:
    """In-flight request counts per API key (event-loop thread only)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max concurrency per key must be >= 1, got {limit}")
        self.limit = limit
        self.inflight: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        if self.inflight.get(key, 0) >= self.limit:
            raise APIError(
                429,
                f"too many concurrent requests for this API key (limit {self.limit})",
                code="concurrency_limit_exceeded",
            )
        self.inflight[key] = self.inflight.get(key, 0) + 1

    def release(self, key: str) -> None:
        self.inflight[key] -= 1
        if not self.inflight[key]:
            del self.inflight[key]

    def hold_until_done(self, key: str, work: Future) -> None:
        """Release ``key``'s slot when ``work`` (a worker thread's future) finishes."""
        loop = asyncio.get_running_loop()

        def done(_: Future) -> None:
            try:
                loop.call_soon_threadsafe(self.release, key)
            except RuntimeError:  # the loop is closed: the server has stopped
                pass

        work.add_done_callback(done)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def _receive(request: Request, limit: int) -> bytes:
    too_large = APIError(413, f"request body exceeds {limit} bytes", code="request_too_large")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_body(request: Request, limits: Limits) -> dict[str, Any]:
    """The request's JSON object, read under the limits."""
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            body = await _receive(request, limits.max_body_bytes)
    except TimeoutError:
        raise APIError(
            408,
            f"request body not received within {limits.body_timeout_s:g} s",
            code="request_timeout",
        ) from None
    except ClientDisconnect:
        raise RequestCancelled from None
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise APIError(400, f"request body is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except RecursionError:
        raise APIError(400, "request body is nested too deeply", code="invalid_json") from None
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end].encode("unicode_escape").decode()
        raise APIError(
            400,
            f"request body contains a lone UTF-16 surrogate ({bad}): not valid text",
            code="invalid_text",
        ) from None
    return data


def validation_error(err: ValidationError) -> APIError:
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    return APIError(
        422,
        f"invalid {param}: {first['msg']}" if param else first["msg"],
        code="invalid_value",
        param=param,
    )
