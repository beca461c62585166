"""The one interface every language-model backend implements: :class:`Generator`.

Prompts are raw text. Continuing a partial solution is just a longer prompt
(``problem.prompt + partial``), so step-wise search works over any backend that
exposes a completions-style API. Every call returns the token usage it spent,
including the tokens of samples that were cancelled.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class BackendError(RuntimeError):
    """A backend could not serve a request (unreachable, refused key, unknown model...)."""


class UnsupportedCapability(BackendError):
    """A strategy asked a backend for something it cannot do (e.g. logprobs)."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")


@dataclass
class Usage:
    """Tokens and calls spent. ``prompt_tokens`` counts every prompt token the
    model processed (a prompt sampled n times in one call is processed once
    when the backend shares its prefix, n times otherwise). ``cached_tokens`` are
    prompt tokens *not* processed because their keys/values were reused from an
    earlier call (the embedded backend's prefix cache); prompt + cached tokens is
    the prompts' length."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: float = 0  # fractional once a batched call is split among its prompts
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
            self.cached_tokens + other.cached_tokens,
        )

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls
        self.cached_tokens += other.cached_tokens
        return self

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Completion:
    """One sampled continuation.

    ``finish_reason`` is ``"stop"`` (EOS or a stop string, which is *not*
    included in ``text``; ``stop_string`` says which one), ``"length"``
    (max_tokens reached) or ``"cancelled"``.
    """

    text: str
    finish_reason: str
    num_tokens: int
    token_logprobs: list[float] | None = None
    stop_string: str | None = None
    # Every generated id (EOS / stop-completing tokens included) when the backend has them:
    # exact for training on samples even when the text drops special tokens.
    token_ids: list[int] | None = None

    @property
    def mean_logprob(self) -> float:
        if not self.token_logprobs:
            raise UnsupportedCapability("this completion carries no logprobs")
        return sum(self.token_logprobs) / len(self.token_logprobs)


@dataclass
class GenerationResult:
    """``completions[i]`` holds the ``n`` samples for ``prompts[i]``."""

    completions: list[list[Completion]]
    usage: Usage = field(default_factory=Usage)


class CancelToken:
    """Thread-safe flag a caller sets to stop generation early.

    Backends check it between decoding steps; samples cut short come back with
    ``finish_reason == "cancelled"`` and their tokens are still counted.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


# Called as soon as one sample finishes: (prompt index, sample index, completion).
FinishCallback = Callable[[int, int, Completion], None]


@dataclass(frozen=True)
class Capabilities:
    logprobs: bool = True
    continuation: bool = True  # raw-text (completions-style) prompts
    cancellation: bool = True
    seed: bool = True


class Generator(ABC):
    """A language model that samples continuations of raw-text prompts."""

    name: str = "generator"
    capabilities: Capabilities = Capabilities()

    @property
    def num_parameters(self) -> int | None:
        """Parameter count for FLOP estimates (None when unknown)."""
        return None

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        """Sample ``params.n`` continuations for every prompt."""

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` under this model's tokenizer."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What this backend is and did (a run's config records it): name, parameter
        count, and for remote ones what was learnt about the server and adapted to."""
        return {"name": self.name, "num_parameters": self.num_parameters}

    def require(self, *needed: str, by: str) -> None:
        """Refuse up front when a strategy needs a capability this backend lacks."""
        missing = [c for c in needed if not getattr(self.capabilities, c)]
        if missing:
            raise UnsupportedCapability(
                f"{by} needs {', '.join(missing)}, which backend {self.name!r} does not provide"
            )
