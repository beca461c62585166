"""Per-request views of the shared model: fair turns, cancellation, the verifier's attributes."""

from __future__ import annotations

import threading
import time

import pytest

from testtime.backends.base import CancelToken
from testtime.serve.guarded import FairGate, RequestCancelled, RequestVerifier, _Turns
from testtime.verifiers.base import Scores, Verifier


def test_gate_serves_keys_round_robin() -> None:
    gate, order, never = FairGate(), [], CancelToken()
    hold = threading.Event()

    def call(key: str, tag: str) -> None:
        with gate.turn(key, never):
            order.append(tag)
            if tag == "first":
                hold.wait(5)

    first = threading.Thread(target=call, args=("a", "first"))
    first.start()
    time.sleep(0.05)
    waiting = []
    for key, tag in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1")]:
        waiting.append(threading.Thread(target=call, args=(key, tag)))
        waiting[-1].start()
        time.sleep(0.02)  # queue them in this order
    hold.set()
    for t in [first, *waiting]:
        t.join(5)
    # a's three queued calls do not all go before b's and c's one each.
    assert order == ["first", "a1", "b1", "c1", "a2", "a3"]


def test_a_cancelled_request_leaves_the_queue() -> None:
    gate, cancel, held, release = FairGate(), CancelToken(), threading.Event(), threading.Event()

    def busy() -> None:  # the model is busy with a's call, on another thread
        with gate.turn("a", CancelToken()):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=busy)
    holder.start()
    held.wait(5)
    threading.Timer(0.1, cancel.cancel).start()
    start = time.monotonic()
    with pytest.raises(RequestCancelled), gate.turn("b", cancel):
        pass
    assert time.monotonic() - start < 1
    release.set()
    holder.join(5)
    with gate.turn("b", CancelToken()):  # the gate is free, and b's stale ticket is gone
        pass


def test_a_holder_may_reenter_the_gate() -> None:
    gate, never = FairGate(), CancelToken()
    with gate.turn("a", never), gate.turn("a", never):  # e.g. scoring inside a callback
        pass
    with gate.turn("b", never):  # released once, fully
        pass


def test_request_verifier_keeps_the_verifiers_declared_attributes() -> None:
    class Pairwise(Verifier):
        name, process, relative = "pairwise", False, True

        def score(self, problem, solutions):
            return Scores([[1.0] for _ in solutions])

    cancel = CancelToken()
    view = RequestVerifier(Pairwise(), _Turns(None, "k", cancel))
    assert (view.name, view.process, view.relative, view.reads_labels) == (
        "pairwise", False, True, False
    )
    cancel.cancel()
    with pytest.raises(RequestCancelled):  # no scoring starts after cancellation
        view.score(None, ["x"])
