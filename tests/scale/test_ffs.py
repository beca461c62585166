import pytest

from testtime.backends.base import Capabilities, UnsupportedCapability
from testtime.scale import get_strategy

from .conftest import ScriptedGenerator

SHORT = "1+2=3\nanswer: 6\n"  # finishes first (fewest tokens)
LONG = "1+2=3\n3+3=6\n" * 10 + "answer: 7\n"


def test_ffs_sync_returns_first_finisher_and_counts_cancelled_tokens(task, problem):
    gen = ScriptedGenerator({problem.prompt: [LONG, SHORT, LONG, LONG]})
    res = get_strategy("ffs", n=4).solve([problem], gen, task)[0]
    assert res.answer == "6" and res.meta["winner"] == 1
    reasons = [c.finish_reason for c in res.candidates]
    assert reasons == ["cancelled", "stop", "cancelled", "cancelled"]
    # The batch stopped at the winner's last step: every sample generated len(SHORT) tokens.
    assert [c.num_tokens for c in res.candidates] == [len(SHORT)] * 4
    assert res.compute.generated_tokens == 4 * len(SHORT)
    assert all(c.answer is None for c in res.candidates if c.finish_reason == "cancelled")


def test_ffs_async_cancels_concurrent_requests(task, problem):
    gen = ScriptedGenerator({problem.prompt: [LONG, SHORT, LONG]}, delay_s=0.002)
    res = get_strategy("ffs", n=3, mode="async").solve([problem], gen, task)[0]
    assert res.answer == "6"
    assert len(gen.calls) == 3 and all(p.n == 1 for _, p in gen.calls)
    cancelled = [c for c in res.candidates if c.finish_reason == "cancelled"]
    assert len(cancelled) == 2 and all(c.num_tokens < len(LONG) for c in cancelled)
    assert res.compute.generated_tokens == sum(c.num_tokens for c in res.candidates)
    assert res.compute.model_calls == 3


def test_ffs_without_any_finisher_takes_the_shortest(task, problem):
    gen = ScriptedGenerator({problem.prompt: [LONG + "x" * 50, LONG]})
    res = get_strategy("ffs", n=2, max_tokens=len(LONG) + 10).solve([problem], gen, task)[0]
    assert res.meta["winner"] == 1 and res.answer == "7"


def test_ffs_refuses_backends_without_cancellation(task, problem):
    gen = ScriptedGenerator({problem.prompt: [SHORT]}, capabilities=Capabilities(cancellation=False))
    with pytest.raises(UnsupportedCapability, match="cancellation"):
        get_strategy("ffs").solve([problem], gen, task)
    assert gen.calls == []
    with pytest.raises(ValueError, match="mode"):
        get_strategy("ffs", mode="eventually")
