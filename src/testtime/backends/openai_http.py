"""Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp...) over HTTP.

Requests always stream (server-sent events), so that cancelling — a caller's
:class:`~testtime.backends.base.CancelToken`, e.g. First Finish Search stopping
the other samples once one has finished — really closes the connection and the
server stops generating. Tokens received before a cancel are still counted.

Transport: one ``httpx.AsyncClient`` (keep-alive connection pool) living on a
private event loop thread — or on a server's own loop once it calls
:meth:`OpenAIGenerator.adopt_running_loop` (``testtime serve`` does, saving a
thread hop per call) —, a semaphore bounding concurrent requests, and bounded
retries with exponential backoff + jitter on 429 / 5xx / timeouts / connection
errors. A 429 or 503 (and its ``Retry-After``) pauses *every* request of this
generator until the wait is over, so a rate limit does not turn into a retry
storm. Other 4xx answers are not retried and become one clear
:class:`~testtime.backends.base.BackendError` (the API key is never printed).

Usage comes from the server's ``usage`` (``stream_options.include_usage``).
When a stream ends without it (cancelled, or a server that does not send it)
completion tokens are counted from the stream (logprob entries, else one per
content chunk) and prompt tokens from, in order: an earlier ``usage`` for the
same prompt, the optional ``tokenizer``, or an estimate of 4 bytes per token.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx

from testtime.backends.base import (
    BackendError,
    CancelToken,
    Capabilities,
    Completion,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
    Usage,
)

MODES = ("completions", "chat")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_CANCEL_POLL_S = 0.01


@dataclass
class _Sample:
    """One sample's stream so far."""

    parts: list[str] = field(default_factory=list)
    tokens: int = 0
    logprobs: list[float] = field(default_factory=list)
    reason: str | None = None
    stop_string: str | None = None

    def completion(self, want_logprobs: bool) -> Completion:
        return Completion(
            text="".join(self.parts),
            finish_reason=self.reason or "cancelled",
            num_tokens=self.tokens,
            token_logprobs=list(self.logprobs) if want_logprobs else None,
            stop_string=self.stop_string,
        )


@dataclass
class _Job:
    """One HTTP request: ``slots`` are the sample indices of prompt ``prompt`` it fills."""

    prompt: int
    slots: list[int]
    sent: bool = False
    usage_seen: bool = False


class _LoopThread:
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


class OpenAIGenerator(Generator):
    """``/completions`` (raw-text prompts, continuation) or ``/chat/completions``
    (the prompt becomes one user message; no continuation) of an OpenAI-compatible API."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        mode: str = "completions",
        max_concurrency: int = 16,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        split_n: bool = False,
        tokenizer: Any = None,
        num_parameters: int | None = None,
    ) -> None:
        if not model:
            raise ValueError("an OpenAI-compatible backend needs a model name (option model=...)")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if max_concurrency < 1 or max_attempts < 1:
            raise ValueError("max_concurrency and max_attempts must be >= 1")
        if api_key is None and api_key_env is not None:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ValueError(f"environment variable {api_key_env} (the API key) is not set")
        self.base_url = base_url.rstrip("/")
        self.model, self.mode = model, mode
        self.name = f"openai:{self.base_url}:{model}"
        self.capabilities = Capabilities(continuation=mode == "completions")
        self._key = api_key
        self._key_hint = f" (from ${api_key_env})" if api_key_env else ""
        self.max_concurrency, self.max_attempts = max_concurrency, max_attempts
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.split_n = split_n
        if isinstance(tokenizer, str | os.PathLike):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        self.tokenizer = tokenizer
        self._num_parameters = num_parameters
        self._prompt_tokens: dict[str, int] = {}  # prompt -> server-reported prompt tokens
        self._lock = threading.Lock()
        self._runner: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._not_before = 0.0  # monotonic time before which no request is sent
        self._stream_usage = True  # ask for usage in the stream until a server refuses it

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIGenerator({self.base_url!r}, model={self.model!r}, mode={self.mode!r})"

    @property
    def num_parameters(self) -> int | None:
        return self._num_parameters

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            # NotImplementedError, as the Generator interface documents for "cannot count".
            raise NotImplementedError(
                f"backend {self.name!r} counts tokens only with a tokenizer (option tokenizer=...)"
            )
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    # ---- sync / async entry points -------------------------------------------------

    def _loop_thread(self) -> _LoopThread:
        with self._lock:
            if self._runner is None:
                self._runner = _LoopThread()
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
            old, self._runner = self._runner, _LoopThread(loop)
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
        state.update(_lock=None, _runner=None, _client=None, _sem=None)
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

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one call --------------------------------------------------------------------

    async def _generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        cancel: CancelToken | None,
        on_finish: FinishCallback | None,
    ) -> GenerationResult:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                limits=httpx.Limits(
                    max_connections=self.max_concurrency,
                    max_keepalive_connections=self.max_concurrency,
                ),
                headers={"Authorization": f"Bearer {self._key}"} if self._key else {},
            )
            self._sem = asyncio.Semaphore(self.max_concurrency)
        samples = [[_Sample() for _ in range(params.n)] for _ in prompts]
        jobs = [
            _Job(i, [j] if self.split_n else list(range(params.n)))
            for i in range(len(prompts))
            for j in (range(params.n) if self.split_n else [0])
        ]
        usage = Usage()
        tasks = [
            asyncio.create_task(
                self._run_job(
                    job, prompts[job.prompt], samples[job.prompt], params, usage, on_finish
                )
            )
            for job in jobs
        ]
        watcher = asyncio.create_task(_wait_cancelled(cancel))
        try:
            pending = set(tasks)
            while pending and not watcher.done():
                done, pending = await asyncio.wait(
                    pending | {watcher}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(watcher)
                for t in done:
                    if t is not watcher and t.exception() is not None:
                        raise t.exception()
        finally:
            for t in (*tasks, watcher):
                t.cancel()  # closes the streams still open
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
        for job in jobs:
            # Streams without a usage report: count what we saw.
            if job.sent and not job.usage_seen:
                usage.prompt_tokens += self._prompt_estimate(prompts[job.prompt])
                usage.completion_tokens += sum(samples[job.prompt][j].tokens for j in job.slots)
        return GenerationResult(
            [[s.completion(params.logprobs) for s in row] for row in samples], usage
        )

    def _prompt_estimate(self, prompt: str) -> int:
        if prompt in self._prompt_tokens:
            return self._prompt_tokens[prompt]
        if self.tokenizer is not None:
            return self.count_tokens(prompt)
        return math.ceil(len(prompt.encode()) / 4)

    def _body(self, prompt: str, params: SamplingParams, n: int, seed: int | None) -> dict:
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": True,
        }
        if self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = seed
        if self.mode == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if params.logprobs:
                body["logprobs"] = True
        else:
            body["prompt"] = prompt
            if params.logprobs:
                body["logprobs"] = 1  # top-1 alternatives; we read the sampled tokens' values
        return body

    async def _run_job(
        self,
        job: _Job,
        prompt: str,
        samples: list[_Sample],
        params: SamplingParams,
        usage: Usage,
        on_finish: FinishCallback | None,
    ) -> None:
        assert self._sem is not None and self._client is not None
        url = f"{self.base_url}/{'chat/completions' if self.mode == 'chat' else 'completions'}"
        # split_n: sample j gets seed + j so the n requests differ but stay reproducible.
        seed = params.seed
        if seed is not None and self.split_n:
            seed += job.slots[0]
        last_error = ""
        async with self._sem:
            for attempt in range(self.max_attempts):
                pending = [j for j in job.slots if samples[j].reason is None]
                for j in pending:  # tokens of a broken attempt were spent, but are discarded
                    usage.completion_tokens += samples[j].tokens
                    samples[j] = _Sample()
                await self._wait_gate()
                retry_after: float | None = None
                try:
                    usage.calls += 1  # every HTTP request sent, retries included
                    body = self._body(prompt, params, len(pending), seed)
                    async with self._client.stream("POST", url, json=body) as resp:
                        if resp.status_code != 200:
                            await resp.aread()
                            if self._refuses_stream_usage(resp):
                                # An older server: count usage from the stream instead.
                                self._stream_usage = False
                                continue
                            retry_after = self._check_status(resp, url)
                            last_error = f"HTTP {resp.status_code}"
                        else:
                            job.sent = True  # the server is processing the prompt
                            await self._read_stream(
                                resp, url, job, prompt, pending, samples, usage, params, on_finish
                            )
                            return
                except httpx.TimeoutException:
                    last_error = f"timed out (timeout {self.timeout.read}s)"
                except httpx.TransportError as err:
                    last_error = f"connection error: {type(err).__name__}"
                if attempt + 1 < self.max_attempts:
                    await asyncio.sleep(self._backoff(attempt, retry_after))
        raise BackendError(f"{url} failed after {self.max_attempts} attempts: {last_error}")

    async def _wait_gate(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter; a server's Retry-After wins (capped)."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max) * random.uniform(1.0, 1.1)
        return min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)

    def _refuses_stream_usage(self, resp: httpx.Response) -> bool:
        return (
            self._stream_usage
            and resp.status_code in (400, 422)
            and "stream_options" in self._server_message(resp)
        )

    def _check_status(self, resp: httpx.Response, url: str) -> float | None:
        """Raise for a final error; for a retryable one return Retry-After (seconds or None)."""
        code, msg = resp.status_code, self._server_message(resp)
        if code in RETRY_STATUS:
            retry_after = _parse_retry_after(resp.headers.get("retry-after"))
            if code in (429, 503):  # back off every request of this generator, not just this one
                wait = retry_after if retry_after is not None else self.backoff_base
                self._not_before = max(
                    self._not_before, time.monotonic() + min(wait, self.backoff_max)
                )
            return retry_after
        if code in (401, 403):
            raise BackendError(f"{url} refused the API key{self._key_hint} (HTTP {code}): {msg}")
        if code == 404:
            raise BackendError(
                f"HTTP 404 from {url}: model {self.model!r} is unknown there, or the base URL "
                f"is wrong (it usually ends in /v1): {msg}"
            )
        raise BackendError(f"HTTP {code} from {url}: {msg}")

    def _server_message(self, resp: httpx.Response) -> str:
        try:
            err = resp.json().get("error", resp.json())
            msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            msg = resp.text
        if self._key:
            msg = msg.replace(self._key, "***")
        return " ".join(msg.split())[:300] or "(no message)"

    async def _read_stream(
        self,
        resp: httpx.Response,
        url: str,
        job: _Job,
        prompt: str,
        pending: list[int],
        samples: list[_Sample],
        usage: Usage,
        params: SamplingParams,
        on_finish: FinishCallback | None,
    ) -> None:
        seen: set[int] = set()
        done = False
        async for line in resp.aiter_lines():
            # After [DONE] the body is read to its end all the same: a response left
            # unfinished closes its connection, and the next call pays a new TCP connect.
            if done or not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                continue
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise BackendError(
                    f"malformed JSON in the stream from {url}: {data[:80]!r}"
                ) from None
            if not isinstance(chunk, dict):
                raise BackendError(f"malformed chunk from {url}: {data[:80]!r}")
            if "error" in chunk:
                raise BackendError(
                    f"{url} reported an error mid-stream: {str(chunk['error'])[:300]}"
                )
            for choice in chunk.get("choices") or []:
                k = choice.get("index", 0)
                if not isinstance(k, int) or not 0 <= k < len(pending):
                    raise BackendError(f"{url} sent a choice index {k!r} beyond n={len(pending)}")
                seen.add(k)
                j = pending[k]
                s = samples[j]
                _absorb(s, choice, self.mode)
                reason = choice.get("finish_reason")
                if reason is not None and s.reason is None:
                    s.reason = "length" if reason == "length" else "stop"
                    stop = choice.get("stop_reason")
                    if isinstance(stop, str) and stop in params.stop:
                        s.stop_string = stop
                    if on_finish is not None:
                        on_finish(job.prompt, j, s.completion(params.logprobs))
            u = chunk.get("usage")
            if isinstance(u, dict) and "completion_tokens" in u:
                job.usage_seen = True
                usage.prompt_tokens += int(u.get("prompt_tokens", 0))
                usage.completion_tokens += int(u["completion_tokens"])
                if len(self._prompt_tokens) > 10_000:  # bound the memo on long runs
                    self._prompt_tokens.clear()
                self._prompt_tokens[prompt] = int(u.get("prompt_tokens", 0))
        if len(seen) < len(pending):
            raise BackendError(
                f"{url} returned {len(seen)} of the {len(pending)} samples asked for (n); "
                "for servers without n > 1 use the option split_n=True"
            )
        for j in pending:
            if samples[j].reason is None:  # some servers omit the final finish_reason
                samples[j].reason = "stop"


async def _wait_cancelled(cancel: CancelToken | None) -> None:
    """Returns once ``cancel`` is set (never without one); a thread-safe flag, so poll it."""
    while cancel is None or not cancel.cancelled:
        await asyncio.sleep(_CANCEL_POLL_S if cancel is not None else 3600)


def _absorb(s: _Sample, choice: dict, mode: str) -> None:
    """Add one streamed choice delta (text, tokens, logprobs) to a sample."""
    if mode == "chat":
        text = (choice.get("delta") or {}).get("content") or ""
        lp = (choice.get("logprobs") or {}).get("content") or []
        values = [e.get("logprob") for e in lp if isinstance(e, dict)]
    else:
        text = choice.get("text") or ""
        values = (choice.get("logprobs") or {}).get("token_logprobs") or []
    s.parts.append(text)
    s.logprobs.extend(float(v) for v in values if v is not None)
    s.tokens += len(values) if values else (1 if text else 0)


def _parse_retry_after(value: str | None) -> float | None:
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
