"""Assembling streamed choices of an OpenAI-compatible server into samples, with
stop strings detected on the client when the server cannot say which one it hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from testtime.backends.base import Completion


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
