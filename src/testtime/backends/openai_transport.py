"""Transport pieces of the OpenAI-compatible backend: the event loop HTTP runs on,
retry timing (exponential backoff with jitter, ``Retry-After``) and server error text."""

from __future__ import annotations

import asyncio
import email.utils
import random
import threading
import time
from concurrent.futures import Future
from typing import Any

import httpx

from testtime.backends.base import CancelToken

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_CANCEL_POLL_S = 0.01


class LoopThread:
    """The loop HTTP runs on: a private asyncio loop on a daemon thread (``loop=None``)
    or an adopted running loop (a server's), which this object never stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.owned = loop is None
        if loop is None:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(
                target=self.loop.run_forever, name="testtime-http", daemon=True
            )
            self.thread.start()
        else:  # adopted from inside it: its thread is the caller's
            self.loop, self.thread = loop, threading.current_thread()

    def submit(self, coro: Any) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.owned:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.loop.close()


async def wait_cancelled(cancel: CancelToken | None) -> None:
    """Returns once ``cancel`` is set (never without one); a thread-safe flag, so poll it."""
    while cancel is None or not cancel.cancelled:
        await asyncio.sleep(_CANCEL_POLL_S if cancel is not None else 3600)


def backoff(attempt: int, retry_after: float | None, base: float, cap: float) -> float:
    """Exponential backoff with jitter; a server's Retry-After wins (capped)."""
    if retry_after is not None:
        return min(retry_after, cap) * random.uniform(1.0, 1.1)
    return min(cap, base * 2**attempt) * random.uniform(0.5, 1.0)


def server_message(resp: httpx.Response, secret: str | None) -> str:
    """The error message of a server's answer, one line, with ``secret`` masked."""
    try:
        err = resp.json().get("error", resp.json())
        msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        msg = resp.text
    if secret:
        msg = msg.replace(secret, "***")
    return " ".join(msg.split())[:300] or "(no message)"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
