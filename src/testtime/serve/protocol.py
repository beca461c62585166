"""The OpenAI wire format: request schemas and response / stream-chunk bodies."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from testtime.serve.errors import APIError
from testtime.serve.outcome import Outcome

MAX_CHOICES = 64
MAX_STOPS = 4
_NOT_SENT = ("system", "developer")


class _Lenient(BaseModel):
    # Clients send many optional OpenAI fields (presence_penalty, user, ...); unknown
    # ones are ignored, the ones that would change the result are validated below.
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Request(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    # Choices per prompt, each an independent run of the strategy (OpenAI semantics).
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    # Applied to the returned text: it ends before the first stop string (the
    # strategy's candidates are generated whole, and their tokens counted).
    stop: str | list[str] | None = Field(None, validate_default=True)
    # Not available: the answer is chosen among hidden candidates (a clear 400).
    logprobs: bool | int | None = None
    top_logprobs: int | None = None
    testtime: dict[str, Any] | None = None
    # Top-level shorthands for testtime.{strategy, verifier, task}.
    strategy: str | None = None
    verifier: str | None = None
    task: str | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> list[str]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > MAX_STOPS or not all(0 < len(s) <= 256 for s in stops):
            raise ValueError(f"at most {MAX_STOPS} stop strings of 1 to 256 characters")
        return stops

    def check_supported(self) -> None:
        """Refuse fields the server cannot honour (400, not a silent null)."""
        # logprobs=0 (completions) asks for the sampled tokens' logprobs too.
        if (self.logprobs is not None and self.logprobs is not False) or self.top_logprobs:
            raise APIError(
                400,
                "logprobs are not available: a test-time strategy chooses its answer among "
                "hidden candidates, whose token logprobs are not returned; omit logprobs",
                code="unsupported_parameter",
                param="logprobs",
            )

    def warnings(self) -> list[str]:
        return []

    def sampling(self) -> dict[str, Any]:
        """Request-level sampling fields, for strategies that take them."""
        out: dict[str, Any] = {"seed": self.seed}
        for key in ("temperature", "top_p"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.max_tokens_asked() is not None:
            out["max_tokens"] = self.max_tokens_asked()
        return out

    def max_tokens_asked(self) -> int | None:
        return self.max_tokens

    def testtime_options(self) -> dict[str, Any]:
        out = dict(self.testtime or {})
        for key in ("strategy", "verifier", "task"):
            value = getattr(self, key)
            if value is not None:
                if key in out and out[key] != value:
                    raise APIError(400, f"{key!r} given twice with different values", param=key)
                out[key] = value
        return out

    def prompts(self) -> list[str]:
        raise NotImplementedError

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def max_tokens_asked(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def prompts(self) -> list[str]:
        # The upstream takes raw text in the model's own prompt format: the user and
        # assistant turns, one per line. A system prompt has no place in that format
        # (prepended, it garbles a raw model's output): it is left out, with a warning.
        text = "\n".join(m.text() for m in self.messages if m.role not in _NOT_SENT and m.text())
        if not text:
            raise APIError(
                400, "messages hold no user or assistant text to answer", param="messages"
            )
        return [text]

    def warnings(self) -> list[str]:
        if any(m.role in _NOT_SENT and m.text() for m in self.messages):
            return [
                "system/developer messages were not sent: the upstream takes raw prompts "
                "in its own format, which has no place for them; put instructions in the "
                "user message"
            ]
        return []


class CompletionRequest(_Request):
    prompt: str | list[str] = Field(min_length=1)
    echo: bool = False

    def check_supported(self) -> None:
        super().check_supported()
        if self.echo:
            raise APIError(
                400, "echo is not supported: omit it", code="unsupported_parameter", param="echo"
            )

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def apply_stop(outcome: Outcome, stops: list[str]) -> None:
    """End each choice's text before its first stop string (finish_reason ``stop``)."""
    for choice in outcome.choices:
        cuts = [i for i in (choice.text.find(s) for s in stops) if i >= 0]
        if cuts:
            choice.text, choice.finish_reason = choice.text[: min(cuts)], "stop"


def _warned(body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    if outcome.warnings:
        body["warning"] = "; ".join(outcome.warnings)
    return body


def _head(kind: str, model: str) -> dict[str, Any]:
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}


def response_body(kind: str, model: str, outcome: Outcome) -> dict[str, Any]:
    if kind == "chat":
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason,
                "logprobs": None,
            }
            for i, c in enumerate(outcome.choices)
        ]
        obj = "chat.completion"
    else:
        choices = [
            {"index": i, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
            for i, c in enumerate(outcome.choices)
        ]
        obj = "text_completion"
    body = {**_head(kind, model), "object": obj, "choices": choices, "usage": outcome.usage}
    return _warned(body, outcome)


def _pieces(text: str) -> list[str]:
    """The decided text as stream deltas: one per line (one reasoning step)."""
    return text.splitlines(keepends=True) or [""]


def stream_chunks(
    kind: str, model: str, outcome: Outcome, include_usage: bool
) -> list[dict[str, Any]]:
    """Every chunk of a streamed response, in order (without the ``[DONE]`` sentinel)."""
    head = _head(kind, model)
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(index: int, delta: str | None, finish: str | None, *, role: bool = False):
        if kind == "chat":
            d: dict[str, Any] = {"role": "assistant"} if role else {}
            if delta is not None:
                d["content"] = delta
            choice = {"index": index, "delta": d, "finish_reason": finish, "logprobs": None}
        else:
            choice = {
                "index": index,
                "text": delta or "",
                "finish_reason": finish,
                "logprobs": None,
            }
        return {**head, "object": obj, "choices": [choice]}

    out = []
    for i, c in enumerate(outcome.choices):
        pieces = _pieces(c.text)
        out.append(chunk(i, pieces[0], None, role=True))
        if i == 0:
            _warned(out[0], outcome)
        out.extend(chunk(i, p, None) for p in pieces[1:])
        out.append(chunk(i, None, c.finish_reason))
    if include_usage:
        out.append({**head, "object": obj, "choices": [], "usage": outcome.usage})
    return out
