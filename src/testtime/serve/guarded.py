"""The shared generator and verifiers as one request sees them.

Each request's strategy gets proxies that (1) stop it when the request is
cancelled (the client left or the server shuts down): no model or verifier call
starts after that, a generation in progress stops at its next decoding step, and
its cut-short samples are never built upon; and (2) for in-process models, take
turns on the model through a :class:`FairGate` one call at a time, round-robin
over API keys, so one key's long request does not starve another key's short one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

from testtime.backends.base import (
    CancelToken,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
)
from testtime.tasks.base import Problem
from testtime.verifiers.base import Scores, Verifier

_POLL_S = 0.05


class RequestCancelled(Exception):
    """The client went away; the request's remaining work is abandoned."""


class FairGate:
    """One holder at a time; waiting keys are served round-robin, each key's waiters FIFO.
    Re-entrant: a call made while its thread holds the gate (a verifier scoring from a
    generation callback) goes straight through."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._holder: int | None = None
        self._queues: dict[str, deque[object]] = {}  # key -> its waiting tickets
        self._turn: deque[str] = deque()  # keys with waiters, in serving order

    @contextmanager
    def turn(self, key: str, cancel: CancelToken) -> Iterator[None]:
        if self._holder == threading.get_ident():
            yield
            return
        ticket = object()
        with self._cond:
            if key not in self._queues:
                self._queues[key] = deque()
                self._turn.append(key)
            self._queues[key].append(ticket)
            try:
                while self._busy or self._queues[self._turn[0]][0] is not ticket:
                    if cancel.cancelled:
                        raise RequestCancelled
                    self._cond.wait(_POLL_S)
            finally:
                queue = self._queues[key]
                queue.remove(ticket)
                self._turn.remove(key)
                if queue:
                    self._turn.append(key)  # its next call waits behind the other keys
                else:
                    del self._queues[key]
                self._cond.notify_all()
            self._busy, self._holder = True, threading.get_ident()
        try:
            yield
        finally:
            with self._cond:
                self._busy, self._holder = False, None
                self._cond.notify_all()


class _EitherCancel(CancelToken):
    """Cancelled when the strategy's own token or the request's token is."""

    def __init__(self, *tokens: CancelToken) -> None:
        super().__init__()
        self._tokens = tokens

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or any(t.cancelled for t in self._tokens)


class _Turns:
    """A request's access to the gate (or none when calls may run concurrently)."""

    def __init__(self, gate: FairGate | None, key: str, cancel: CancelToken) -> None:
        self.gate, self.key, self.cancel = gate, key, cancel

    def __call__(self):
        if self.cancel.cancelled:
            raise RequestCancelled
        return nullcontext() if self.gate is None else self.gate.turn(self.key, self.cancel)


class RequestGenerator(Generator):
    """The upstream generator as one request sees it: stops when the request is cancelled."""

    def __init__(self, inner: Generator, turns: _Turns) -> None:
        self.inner = inner
        self.turns = turns
        self.request_cancel = turns.cancel
        self.name = inner.name
        self.capabilities = inner.capabilities

    @property
    def num_parameters(self) -> int | None:
        return self.inner.num_parameters

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        token = (
            self.request_cancel if cancel is None else _EitherCancel(self.request_cancel, cancel)
        )
        with self.turns():
            result = self.inner.generate(prompts, params, cancel=token, on_finish=on_finish)
        if self.request_cancel.cancelled:  # don't let a strategy build on cut-short samples
            raise RequestCancelled
        return result


class RequestVerifier(Verifier):
    """A shared verifier as one request sees it: no scoring starts after cancellation."""

    def __init__(self, inner: Verifier, turns: _Turns) -> None:
        self.inner = inner
        self.turns = turns
        # The interface's declared attributes (name, process, reads_labels, relative...)
        # are class attributes here too: copy the inner verifier's values over them.
        for attr, value in vars(Verifier).items():
            if not attr.startswith("_") and not callable(value) and not isinstance(value, property):
                setattr(self, attr, getattr(inner, attr))

    @property
    def num_parameters(self) -> int | None:
        return self.inner.num_parameters

    def __getattr__(self, attr: str):  # anything else a strategy reads (task, aggregation...)
        return getattr(self.inner, attr)

    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        with self.turns():
            return self.inner.score(problem, solutions)


def request_views(
    generator: Generator,
    verifier: Verifier | None,
    *,
    gate: FairGate | None,
    key: str,
    cancel: CancelToken,
) -> tuple[RequestGenerator, RequestVerifier | None]:
    turns = _Turns(gate, key, cancel)
    view = None if verifier is None else RequestVerifier(verifier, turns)
    return RequestGenerator(generator, turns), view
