"""One request of the OpenAI-compatible backend: its body, sending it with bounded
retries (exponential backoff + jitter on 429 / 5xx / timeouts / connection errors; a
429 or 503 and its ``Retry-After`` pause every request of the generator), and what a
non-200 answer means: a refused optional field is dropped or re-spelt
(:mod:`~testtime.backends.openai_caps`), other 4xx become one clear
:class:`~testtime.backends.base.BackendError` (the API key is never printed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx

from testtime.backends.base import BackendError, FinishCallback, SamplingParams, Usage
from testtime.backends.openai_caps import (
    INTERRUPT_HINT,
    NEUTRAL_FALLBACKS,
    ServerTraits,
    refused_fields,
)
from testtime.backends.openai_stream import Job, Sample, StreamCut, read_stream
from testtime.backends.openai_tokens import TokenCounter
from testtime.backends.openai_transport import (
    RETRY_STATUS,
    backoff,
    parse_retry_after,
    server_message,
)


class RequestRunner:
    """The per-request half of :class:`~testtime.backends.openai_http.OpenAIGenerator`
    (a mixin: the generator sets the attributes below and opens the client)."""

    base_url: str
    model: str
    mode: str
    max_attempts: int
    timeout: httpx.Timeout
    backoff_base: float
    backoff_max: float
    sampling: dict[str, Any]
    traits: ServerTraits
    counter: TokenCounter
    _key: str | None
    _key_hint: str
    _explicit: dict[str, Any]
    _client: httpx.AsyncClient | None
    _sem: asyncio.Semaphore | None
    _serial: asyncio.Semaphore | None
    _watched: bool
    _not_before: float

    def _body(self, prompt: str, params: SamplingParams, n: int, seed: int | None) -> dict:
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.sampling,
            **{k: v for k, v in self.traits.values.items() if k not in self._explicit},
        }
        if params.stop and self.traits.stop_reason is True:  # else watched client-side
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
        for name in self.traits.refused - set(self._explicit):  # explicit ones stay (an error)
            body.pop(name, None)
        return body

    async def _run_job(
        self,
        job: Job,
        prompt: str,
        samples: list[Sample],
        params: SamplingParams,
        usage: Usage,
        on_finish: FinishCallback | None,
        seed: int | None,
    ) -> list[int]:
        """Serve one job (with retries); returns the slots a server ignoring n left unfilled."""
        assert self._sem is not None and self._client is not None and self._serial is not None
        url = f"{self.base_url}/{'chat/completions' if self.mode == 'chat' else 'completions'}"
        last_error, attempt = "", 0
        async with self._sem:
            while attempt < self.max_attempts:
                pending = [j for j in job.slots if samples[j].reason is None]
                for j in pending:  # tokens of a broken attempt were spent, but are discarded
                    usage.completion_tokens += samples[j].tokens
                    samples[j] = Sample()
                await self._wait_gate()
                retry_after: float | None = None
                gate = self._serial if self.traits.interrupts else contextlib.nullcontext()
                try:
                    async with gate:
                        usage.calls += 1  # every HTTP request sent, retries included
                        body = self._body(prompt, params, len(pending), seed)
                        async with self._client.stream("POST", url, json=body) as resp:
                            if resp.status_code != 200:
                                await resp.aread()
                                if self._drop_refused(resp, body):
                                    continue  # not an attempt: the same request minus a field
                                retry_after = self._check_status(resp, url)
                                last_error = f"HTTP {resp.status_code}"
                            else:
                                job.sent = True  # the server is processing the prompt
                                # Stop strings the server was not told about are watched here.
                                watch = () if "stop" in body else params.stop
                                self._watched = self._watched or bool(watch)
                                return await read_stream(
                                    resp, url, job, prompt, pending, samples, usage, params,
                                    watch, on_finish, traits=self.traits, counter=self.counter,
                                    chat=self.mode == "chat", model=self.model,
                                )
                except httpx.TimeoutException:
                    last_error = f"timed out (timeout {self.timeout.read}s)"
                except (StreamCut, httpx.RemoteProtocolError) as err:
                    self.traits.interrupts = True
                    self.traits.note(f"streams were cut short: requests serialised; {INTERRUPT_HINT}")
                    last_error = f"the server cut the stream short ({err}); {INTERRUPT_HINT}"
                except httpx.TransportError as err:
                    last_error = f"connection error: {type(err).__name__}"
                attempt += 1
                if attempt < self.max_attempts:
                    await asyncio.sleep(
                        backoff(attempt - 1, retry_after, self.backoff_base, self.backoff_max)
                    )
        raise BackendError(f"{url} failed after {self.max_attempts} attempts: {last_error}")

    async def _wait_gate(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _drop_refused(self, resp: httpx.Response, body: dict) -> bool:
        """A 400/422 (llama-cpp-python: 500) naming optional fields we sent: send their
        other neutral spelling, else drop them, from now on (True). A field the user set
        explicitly is not optional: that is an error."""
        if resp.status_code not in (400, 422, 500):
            return False
        optional = {k for k in body if k in self.sampling or k == "stream_options"}
        names = refused_fields(server_message(resp, self._key), optional)
        forced = names & set(self._explicit)
        if forced:
            raise BackendError(
                f"{self.base_url} refuses the sampling field(s) {', '.join(sorted(forced))} "
                f"set by the backend options: {server_message(resp, self._key)}"
            )
        if not names:
            return False
        for name in sorted(names):
            other = NEUTRAL_FALLBACKS.get(name)
            if other is not None and body[name] != other:  # (a concurrent request may
                self.traits.values[name] = other  # have switched it already)
                self.traits.note(f"server refused {name}={body[name]!r}: sent as {other!r}")
            else:
                self.traits.refused.add(name)
                self.traits.note(f"server refused {name}: no longer sent")
        return True

    def _check_status(self, resp: httpx.Response, url: str) -> float | None:
        """Raise for a final error; for a retryable one return Retry-After (seconds or None)."""
        code, msg = resp.status_code, server_message(resp, self._key)
        if code in RETRY_STATUS:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
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
