"""Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp...) over HTTP.

Requests always stream (server-sent events), so that cancelling — a caller's
:class:`~testtime.backends.base.CancelToken`, e.g. First Finish Search stopping
the other samples once one has finished — really closes the connection and the
server stops generating. Tokens received before a cancel are still counted.

Transport (:mod:`~testtime.backends.openai_transport`): one ``httpx.AsyncClient``
(keep-alive pool) on a private event loop thread — or on a server's own loop once it
calls :meth:`OpenAIGenerator.adopt_running_loop` —, a semaphore bounding concurrent
requests. Each request (:mod:`~testtime.backends.openai_request`) has bounded retries
with exponential backoff + jitter on 429 / 5xx / timeouts / connection errors; a 429
or 503 (and its ``Retry-After``) pauses *every* request of this generator. Other 4xx
answers become one clear :class:`~testtime.backends.base.BackendError` (the API key
is never printed).

Seeded calls give every request its own seed (:func:`~testtime.backends.seeds.server_seeds`,
the embedded sampler's per-sample seeds from the prompt's bytes): prompts of one call,
repeated prompts included, and the split requests of one prompt all differ, and each
stays reproducible whatever else is in the call.

What the server honours (``n``, ``stop_reason``, usage in streams, logprobs, seed,
optional sampling fields, concurrent streams) is learnt from its answers and adapted
to, see :mod:`~testtime.backends.openai_caps`; :meth:`OpenAIGenerator.describe` says
what was learnt and done. Requests set the server's sampling defaults neutral
(``top_k=-1, min_p=0, repeat_penalty=1``; options override them).

Usage comes from the server's ``usage`` (``stream_options.include_usage``). A stream
without it counts completion tokens from the stream (logprob entries, else one per
content chunk) and prompt tokens from, in order: an earlier ``usage`` for the same
prompt, the ``tokenizer`` option (BOS counted when it has one distinct from EOS), the
server's tokenize endpoint, or an estimate of 4 bytes per token (noted as such).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import httpx

from testtime.backends.base import (
    CancelToken,
    Capabilities,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
    UnsupportedCapability,
    Usage,
)
from testtime.backends.openai_caps import NEUTRAL_SAMPLING, ServerTraits, traits_for
from testtime.backends.openai_request import RequestRunner
from testtime.backends.openai_stream import Job, Sample
from testtime.backends.openai_tokens import TokenCounter
from testtime.backends.openai_transport import LoopClient, parse_retry_after, wait_cancelled
from testtime.backends.seeds import server_seeds

MODES = ("completions", "chat")
PROBE_PROMPT = "1 + 1 ="
_parse_retry_after = parse_retry_after  # the name tests and older callers import


class OpenAIGenerator(RequestRunner, LoopClient, Generator):
    """``/completions`` (raw-text prompts, continuation) or ``/chat/completions``
    (the prompt becomes one user message; no continuation) of an OpenAI-compatible API.

    ``split_n`` asks for every sample in its own request from the start (otherwise that
    happens once the server is seen ignoring ``n``); ``top_k``, ``min_p``,
    ``repeat_penalty`` and ``extra_body`` are sent with every request."""

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
        top_k: int | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        extra_body: dict[str, Any] | None = None,
        neutral_sampling: bool = True,
    ) -> None:
        if not model:
            raise ValueError("an OpenAI-compatible backend needs a model name (option model=...)")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if max_concurrency < 1 or max_attempts < 1:
            raise ValueError("max_concurrency and max_attempts must be >= 1")
        if num_parameters is not None and num_parameters < 1:
            raise ValueError(f"num_parameters must be >= 1, got {num_parameters}")
        if api_key is None and api_key_env is not None:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ValueError(f"environment variable {api_key_env} (the API key) is not set")
        self.base_url = base_url.rstrip("/")
        self.model, self.mode = model, mode
        self.name = f"openai:{self.base_url}:{model}"
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
        explicit = {"top_k": top_k, "min_p": min_p, "repeat_penalty": repeat_penalty}
        self._explicit = {k: v for k, v in explicit.items() if v is not None} | (extra_body or {})
        self.sampling = {**(NEUTRAL_SAMPLING if neutral_sampling else {}), **self._explicit}
        self.traits: ServerTraits = traits_for(self.base_url, model, mode)
        self.counter = TokenCounter(tokenizer, self.traits, self.base_url, model)
        self._init_loop()
        self._watched = False  # stop strings were watched client-side
        self._not_before = 0.0  # monotonic time before which no request is sent

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("traits")  # shared per process: a worker's copy uses its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.traits = self.counter.traits = traits_for(self.base_url, self.model, self.mode)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIGenerator({self.base_url!r}, model={self.model!r}, mode={self.mode!r})"

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(
            logprobs=self.traits.logprobs is not False,
            continuation=self.mode == "completions",
            seed=self.traits.seed is not False,
        )

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

    def require(self, *needed: str, by: str) -> None:
        """As :meth:`Generator.require`; logprobs not seen yet are probed for first."""
        if "logprobs" in needed and self.traits.logprobs is None:
            self.probe()
        super().require(*needed, by=by)

    def probe(self) -> ServerTraits:
        """Ask the server twice for the same two seeded samples with logprobs: learns
        ``n``, logprobs, usage in streams, ``stop_reason`` and whether ``seed`` is honoured.
        The requests are not counted in any result's usage."""
        params = SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=1234, logprobs=True)
        try:
            first = self.generate([PROBE_PROMPT], params)
        except UnsupportedCapability:  # no logprobs (now recorded): probe the rest without
            params = SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=1234)
            first = self.generate([PROBE_PROMPT], params)
        again = self.generate([PROBE_PROMPT], params)

        def texts(res: GenerationResult) -> list[str]:
            return [c.text for c in res.completions[0]]

        self.traits.learn(
            "seed", texts(first) == texts(again),
            None if texts(first) == texts(again)
            else "seed not honoured: samples are not reproducible from --seed",
        )
        return self.traits

    def describe(self) -> dict[str, Any]:
        t = self.traits
        if self.split_n or t.n is False:
            requests = "one request per sample (split n)"
        else:
            requests = "n samples per request" + ("" if t.n else " (n support not seen yet)")
        stops = {True: "server (stop_reason)", False: "client (watching the text)"}
        return {
            "name": self.name, "mode": self.mode, "requests": requests,
            "stop_detection": stops.get(
                t.stop_reason, stops[False] if self._watched else "not needed yet"
            ),
            "prompt_tokens_from": dict(self.counter.sources),
            "num_parameters": self._num_parameters,
            "flops": "from num_parameters" if self._num_parameters else "unknown (no num_parameters)",
            "sampling_fields": {
                k: v for k, v in {**self.sampling, **t.values, **self._explicit}.items()
                if k not in t.refused or k in self._explicit
            },
            "serialised": t.interrupts or self.max_concurrency == 1,
            "server": t.to_dict(),
        }

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
            self._serial = asyncio.Semaphore(1)
        samples = [[Sample() for _ in range(params.n)] for _ in prompts]
        split = self.split_n or self.traits.n is False
        jobs = [
            Job(i, [j] if split else list(range(params.n)))
            for i in range(len(prompts))
            for j in (range(params.n) if split else [0])
        ]
        usage = Usage()
        seeds = None if params.seed is None else server_seeds(params.seed, prompts, params.n)

        def start(job: Job) -> asyncio.Task:
            # A request's seed is that of its first sample (sample j's when split).
            seed = None if seeds is None else seeds[job.prompt][job.slots[0]]
            return asyncio.create_task(self._run_job(
                job, prompts[job.prompt], samples[job.prompt], params, usage, on_finish, seed
            ))

        tasks = {start(job): job for job in jobs}
        watcher = asyncio.create_task(wait_cancelled(cancel))
        try:
            pending = set(tasks)
            while pending and not watcher.done():
                done, pending = await asyncio.wait(
                    pending | {watcher}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(watcher)
                for t in done:
                    if t is watcher:
                        continue
                    if t.exception() is not None:
                        raise t.exception()
                    missing = t.result()  # samples a server ignoring n did not return
                    tasks[t].slots = [j for j in tasks[t].slots if j not in missing]
                    for j in missing:  # each in its own request (counted there)
                        job = Job(tasks[t].prompt, [j])
                        jobs.append(job)
                        new = start(job)
                        tasks[new] = job
                        pending.add(new)
        finally:
            for t in (*tasks, watcher):
                t.cancel()  # closes the streams still open
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
        if self.tokenizer is not None:  # exact per-sample counts whatever the chunking
            for row in samples:
                for s in row:
                    s.tokens = self.counter.sample_tokens(s)
        for job in jobs:
            # Streams without a usage report: count what we saw.
            if job.sent and not job.usage_seen:
                usage.prompt_tokens += await self.counter.prompt_tokens(
                    self._client, prompts[job.prompt]
                )
                usage.completion_tokens += sum(samples[job.prompt][j].tokens for j in job.slots)
        return GenerationResult(
            [[s.completion(params.logprobs) for s in row] for row in samples], usage
        )
