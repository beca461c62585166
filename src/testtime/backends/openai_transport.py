"""Transport pieces of the OpenAI-compatible backend: the event loop HTTP runs on and
the sync/async entry points around it (:class:`LoopClient`), retry timing (exponential backoff with jitter, ``Retry-After``) and server error text."""

from __future__ import annotations

import asyncio
import email.utils
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import httpx

from testtime.backends.base import CancelToken, FinishCallback, GenerationResult, SamplingParams

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


class LoopClient:
    """Sync and async entry points of an HTTP backend whose requests run on one event
    loop (:class:`LoopThread`) with one connection pool. Subclasses implement the
    coroutine ``_generate(prompts, params, cancel, on_finish)``."""

    _lock: threading.Lock
    _runner: LoopThread | None
    _client: httpx.AsyncClient | None
    _sem: asyncio.Semaphore | None

    def _init_loop(self) -> None:
        self._lock = threading.Lock()
        self._runner, self._client, self._sem, self._serial = None, None, None, None

    async def _generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        cancel: CancelToken | None,
        on_finish: FinishCallback | None,
    ) -> GenerationResult:
        raise NotImplementedError

    # ---- sync / async entry points -------------------------------------------------

    def _loop_thread(self) -> LoopThread:
        with self._lock:
            if self._runner is None:
                self._runner = LoopThread()
            return self._runner

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        """Blocking; usable from any thread, also while another event loop runs there."""
        runner = self._loop_thread()
        if threading.current_thread() is runner.thread:
            raise RuntimeError("generate() called from the backend's own loop; use agenerate()")
        fut = runner.submit(self._generate(prompts, params, cancel, on_finish))
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # e.g. KeyboardInterrupt: close the streams
            raise

    async def agenerate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        """The same from async code; HTTP always runs on the generator's own loop
        (one connection pool), whichever loop awaits this."""
        runner = self._loop_thread()
        coro = self._generate(prompts, params, cancel, on_finish)
        if asyncio.get_running_loop() is runner.loop:
            return await coro
        fut = runner.submit(coro)
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            fut.cancel()
            raise

    async def adopt_running_loop(self) -> None:
        """Run HTTP on the calling (running) loop from now on, e.g. a server's: its
        handlers then await :meth:`agenerate` with no thread hop, and sync callers on
        worker threads hop straight to it instead of to a private loop thread.
        Undo with :meth:`aclose` on that loop before it stops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            old, self._runner = self._runner, LoopThread(loop)
            client, self._client, self._sem = self._client, None, None
        if old is not None:  # the pool belonged to the previous loop: close it there
            if client is not None:
                await asyncio.wrap_future(old.submit(client.aclose()))
            old.stop()

    async def aclose(self) -> None:
        """Release the running loop if the generator runs on it (a later call starts a
        private loop); a generator on another loop is left alone (close() stops it)."""
        with self._lock:
            runner = self._runner
            if runner is None or runner.loop is not asyncio.get_running_loop():
                return
            self._runner = None
            client, self._client, self._sem = self._client, None, None
        if client is not None:
            await client.aclose()
        runner.stop()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to Ray workers (testtime.cluster): each copy opens its own loop and pool lazily.
        state = self.__dict__.copy()
        state.update(_lock=None, _runner=None, _client=None, _sem=None, _serial=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection pool and stop the loop thread (a later call restarts them)."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is None:
            return
        client, self._client, self._sem = self._client, None, None
        if client is not None and runner.loop.is_running():
            if threading.current_thread() is runner.thread:
                raise RuntimeError("close() called from the backend's own loop; use aclose()")
            runner.submit(client.aclose()).result(timeout=5)
        runner.stop()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
