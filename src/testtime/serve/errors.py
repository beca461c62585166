"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with a status."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from testtime.backends.base import BackendError, UnsupportedCapability

# Status -> OpenAI error ``type``.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "upstream_timeout",
}


class APIError(Exception):
    """An error answered to the client as an OpenAI-style body with ``status``."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }


_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)
_ENV = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")


class Redactor:
    """Removes secrets (upstream keys) from any text that may reach a client or a log;
    :meth:`public` also hides what only the operator should see (URLs, environment
    variable names, server paths in ``replacements``)."""

    def __init__(
        self, secrets: list[str] | tuple[str, ...] = (), replacements: Mapping[str, str] = {}
    ) -> None:
        self.secrets = [s for s in secrets if s]
        # Longest first, so a path is never half-replaced by a prefix of another.
        self.replacements = sorted(replacements.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def public(self, text: str) -> str:
        """``text`` as a client may read it."""
        text = self(text)
        for old, new in self.replacements:
            text = text.replace(old, new)
        return _ENV.sub("$<env>", _URL.sub("<upstream>", text))


def _is_timeout(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, TimeoutError | httpx.TimeoutException):
            return True
        # The HTTP backend reports exhausted retries of timed-out reads as a plain
        # BackendError whose message says so.
        if isinstance(seen, BackendError) and "timed out" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def upstream_error(err: BaseException, redact: Redactor) -> APIError:
    """Map a failure raised while serving a request to a client-facing error.

    Timeouts (anywhere in the cause chain) are 504, other backend faults 502;
    a capability the upstream lacks is the client's choice of strategy (400).
    """
    public = redact.public(str(err)) or type(err).__name__
    if isinstance(err, UnsupportedCapability):
        return APIError(400, public, code="unsupported_capability")
    if _is_timeout(err):
        return APIError(504, f"upstream timed out: {public}", code="upstream_timeout")
    if isinstance(err, BackendError | httpx.HTTPError | ConnectionError):
        return APIError(502, f"upstream failed: {public}", code="upstream_error")
    return APIError(500, "internal error while running the request", code="internal_error")
