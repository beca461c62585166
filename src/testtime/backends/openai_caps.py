"""What an OpenAI-compatible server honours, learnt from its answers, cached per
base URL + model + mode for the life of the process.

Servers differ in what they do with the same request (tried: vLLM, llama.cpp's
``llama-cpp-python`` server, OpenAI): ``n > 1`` may be ignored (one choice back),
``stop_reason`` (vLLM's field naming the stop string that ended a choice) may be
absent, usage may be missing from streams, ``seed`` and ``logprobs`` may be ignored,
fields such as ``top_k`` may be refused, and llama-cpp-python's default
``--interrupt_requests true`` ends a running stream when the next request arrives.
:class:`ServerTraits` records each of these as ``True`` / ``False`` / ``None``
(not seen yet); the HTTP backend fills it in from every answer (and from an explicit
probe, :meth:`~testtime.backends.openai_http.OpenAIGenerator.probe`) and adapts:

* ``n`` ignored -> the missing samples are asked for as concurrent single requests
  (sample j with its own seed, as with ``split_n``);
* no ``stop_reason`` -> stop strings are not sent; the backend watches the text, cuts it
  at the first stop string and closes the stream (``stop detection: client``);
* no usage -> prompt tokens from a tokenizer (option ``tokenizer``, else the server's
  tokenize endpoint), completion tokens counted from the stream;
* streams cut by other requests -> requests to this server are serialised;
* a refused optional field -> its other neutral spelling (``top_k=0``), else dropped.

Every adaptation is written once into ``notes``, which the run's config records
(:meth:`~testtime.backends.base.Generator.describe`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# The server's own sampling defaults that would change the distribution, set neutral:
# llama.cpp samples with top_k 40, min_p 0.05, repeat_penalty 1.1 unless told otherwise.
NEUTRAL_SAMPLING: dict[str, Any] = {"top_k": -1, "min_p": 0.0, "repeat_penalty": 1.0}
# The other spelling of a neutral value, tried when a server refuses the first:
# llama-cpp-python wants top_k >= 0 (0 = off), older vLLM top_k = -1 or >= 1.
NEUTRAL_FALLBACKS: dict[str, Any] = {"top_k": 0}
INTERRUPT_HINT = (
    "llama-cpp-python's server ends a running stream when another request arrives: start it "
    "with `--interrupt_requests false` (or use the backend option max_concurrency=1)"
)
# Tokenize endpoints tried, relative to the base URL, for prompt-token counts:
# llama-cpp-python (counts the BOS it prefills), vLLM (at the server root).
TOKENIZE_ENDPOINTS = (("extras/tokenize/count", "input"), ("../tokenize", "prompt"))


@dataclass
class ServerTraits:
    n: bool | None = None  # returns n choices for one request with n > 1
    stop_reason: bool | None = None  # names the stop string that ended a choice
    stream_usage: bool | None = None  # sends usage in streams (stream_options)
    logprobs: bool | None = None
    seed: bool | None = None  # the same seed gives the same samples
    interrupts: bool = False  # cut a stream short when another request came in
    refused: set[str] = field(default_factory=set)  # optional body fields it rejected
    values: dict[str, Any] = field(default_factory=dict)  # neutral values it spells otherwise
    tokenize: str | None = None  # the tokenize endpoint that works ("" = none)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def learn(self, what: str, value: bool, note: str | None = None) -> None:
        """Record a trait the first time it is seen (later answers do not flip it back)."""
        if getattr(self, what) is None:
            setattr(self, what, value)
            if note is not None:
                self.note(note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "stop_reason": self.stop_reason, "stream_usage": self.stream_usage,
            "logprobs": self.logprobs, "seed": self.seed, "interrupts": self.interrupts,
            "refused_fields": sorted(self.refused), "neutral_values": dict(self.values),
            "tokenize_endpoint": self.tokenize,
            "notes": list(self.notes),
        }


_TRAITS: dict[tuple[str, str, str], ServerTraits] = {}
_LOCK = threading.Lock()


def traits_for(base_url: str, model: str, mode: str) -> ServerTraits:
    """The shared record for one server + model + API mode (created empty)."""
    with _LOCK:
        return _TRAITS.setdefault((base_url, model, mode), ServerTraits())


def forget_traits() -> None:
    """Drop everything learnt (a server restarted with other settings; tests)."""
    with _LOCK:
        _TRAITS.clear()


def refused_fields(message: str, candidates: set[str]) -> set[str]:
    """The optional fields a 400/422 message names (``Unrecognized request argument
    supplied: top_k``, pydantic's ``extra_forbidden`` with the field's name...)."""
    return {name for name in candidates if name in message}
