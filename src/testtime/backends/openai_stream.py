"""Reading an OpenAI-compatible server's streams into samples: choices, usage, stop
strings detected on the client when the server cannot say which one it hit, and what
the answers show about the server (:class:`~testtime.backends.openai_caps.ServerTraits`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from testtime.backends.base import (
    BackendError,
    Completion,
    FinishCallback,
    SamplingParams,
    UnsupportedCapability,
    Usage,
)
from testtime.backends.openai_caps import ServerTraits

if TYPE_CHECKING:
    from testtime.backends.openai_tokens import TokenCounter


@dataclass
class Sample:
    """One sample's stream so far."""

    parts: list[str] = field(default_factory=list)
    tokens: int = 0
    logprobs: list[float] = field(default_factory=list)
    reason: str | None = None
    stop_string: str | None = None
    cut: int | None = None  # client-side stop: text length kept

    @property
    def text(self) -> str:
        text = "".join(self.parts)
        return text if self.cut is None else text[: self.cut]

    def completion(self, want_logprobs: bool) -> Completion:
        return Completion(
            text=self.text,
            finish_reason=self.reason or "cancelled",
            num_tokens=self.tokens,
            token_logprobs=list(self.logprobs) if want_logprobs else None,
            stop_string=self.stop_string,
        )

    def absorb(self, choice: dict, chat: bool) -> None:
        """Add one streamed choice delta (text, tokens, logprobs)."""
        if chat:
            text = (choice.get("delta") or {}).get("content") or ""
            lp = (choice.get("logprobs") or {}).get("content") or []
            values = [e.get("logprob") for e in lp if isinstance(e, dict)]
        else:
            text = choice.get("text") or ""
            values = (choice.get("logprobs") or {}).get("token_logprobs") or []
        self.parts.append(text)
        self.logprobs.extend(float(v) for v in values if v is not None)
        self.tokens += len(values) if values else (1 if text else 0)

    def watch_stops(self, stops: Sequence[str], seen_chars: int) -> bool:
        """Client-side stop detection: True (and the sample finished) once the text holds
        a stop string; text from the stop string on is dropped, as servers do. The
        earliest occurrence wins; on a tie the longer string (as the local engines)."""
        text = "".join(self.parts)
        start = max(0, seen_chars - max(len(s) for s in stops) + 1)
        hits = [(text.find(s, start), -len(s), s) for s in stops]
        hits = [h for h in hits if h[0] >= 0]
        if not hits:
            return False
        at, _, stop = min(hits)
        self.cut, self.stop_string, self.reason = at, stop, "stop"
        return True


@dataclass
class Job:
    """One HTTP request: ``slots`` are the sample indices of prompt ``prompt`` it fills."""

    prompt: int
    slots: list[int]
    sent: bool = False
    usage_seen: bool = False


class StreamCut(Exception):
    """The server ended a stream before its samples finished."""


async def read_stream(
    resp: httpx.Response,
    url: str,
    job: Job,
    prompt: str,
    pending: list[int],
    samples: list[Sample],
    usage: Usage,
    params: SamplingParams,
    client_stops: Sequence[str],
    on_finish: FinishCallback | None,
    *,
    traits: ServerTraits,
    counter: TokenCounter,
    chat: bool,
    model: str,
) -> list[int]:
    """Read one request's stream into its ``pending`` samples, learning ``traits`` on
    the way; returns the samples a server ignoring ``n`` left unfilled."""
    t = traits
    seen: set[int] = set()
    done = cut = False
    async for line in resp.aiter_lines():
        # After [DONE] the body is read to its end all the same: a response left
        # unfinished closes its connection, and the next call pays a new TCP connect.
        if done or not line.startswith("data:"):
            continue  # blank separators, comments, event names, pings
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        chunk = parse_chunk(data, url)
        for choice in chunk.get("choices") or []:
            k = choice.get("index", 0)
            if not isinstance(k, int) or not 0 <= k < len(pending):
                raise BackendError(f"{url} sent a choice index {k!r} beyond n={len(pending)}")
            seen.add(k)
            s = samples[pending[k]]
            if s.reason is not None:  # stopped client-side: the rest is dropped
                continue
            chars = sum(map(len, s.parts))
            s.absorb(choice, chat)
            reason = choice.get("finish_reason")
            if client_stops and s.watch_stops(client_stops, chars):
                cut = True
            elif reason is not None:
                s.reason = "length" if reason == "length" else "stop"
                t.learn(
                    "stop_reason", "stop_reason" in choice,
                    None if "stop_reason" in choice
                    else "server names no stop_reason: stop strings detected client-side",
                )
                stop = choice.get("stop_reason")
                if isinstance(stop, str) and stop in params.stop:
                    s.stop_string = stop
            else:
                continue
            if on_finish is not None:
                on_finish(job.prompt, pending[k], s.completion(params.logprobs))
        u = chunk.get("usage")
        if isinstance(u, dict) and "completion_tokens" in u:
            job.usage_seen = True
            usage.prompt_tokens += int(u.get("prompt_tokens", 0))
            usage.completion_tokens += int(u["completion_tokens"])
            counter.sources["server usage"] += 1
            counter.remember(prompt, int(u.get("prompt_tokens", 0)))
        if cut and all(samples[j].reason is not None for j in pending):
            break  # closing the stream stops the server generating past the stop string
    if not cut:
        t.learn("stream_usage", job.usage_seen, None if job.usage_seen else (
            "server sends no usage in streams: tokens counted from the stream"
        ))
    if not seen and not cut:
        raise StreamCut("the stream ended before any choice")
    leftovers: list[int] = []
    if len(pending) > 1 and seen == {0} and done:
        t.learn("n", False, "server ignores n: samples asked for one request each")
        if t.n is False:
            leftovers = pending[1:]
    elif len(pending) > 1 and len(seen) == len(pending):
        t.learn("n", True)
    if len(seen) + len(leftovers) < len(pending):
        raise BackendError(
            f"{url} returned {len(seen)} of the {len(pending)} samples asked for (n); "
            "use the backend option split_n=true"
        )
    got = [pending[k] for k in sorted(seen)]
    if any(samples[j].reason is None for j in got):
        raise StreamCut("a sample got no finish_reason")
    check_logprobs([samples[j] for j in got], params, url, traits, model)
    return leftovers


def check_logprobs(
    got: list[Sample], params: SamplingParams, url: str, traits: ServerTraits, model: str
) -> None:
    if not params.logprobs:
        return
    missing = any(s.tokens and not s.logprobs for s in got)
    traits.learn("logprobs", not missing)
    if missing:
        raise UnsupportedCapability(
            f"{url} returned no logprobs for model {model!r}; strategies that need "
            "them (e.g. rpc, qalign) cannot run on this server"
        )


def parse_chunk(data: str, url: str) -> dict:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise BackendError(f"malformed JSON in the stream from {url}: {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise BackendError(f"malformed chunk from {url}: {data[:80]!r}")
    if "error" in chunk:
        raise BackendError(f"{url} reported an error mid-stream: {str(chunk['error'])[:300]}")
    return chunk
