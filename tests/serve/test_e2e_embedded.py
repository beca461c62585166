"""`testtime serve` over the shipped TinyReasoner (skipped until its weights exist)."""

from __future__ import annotations

import pytest

from testtime.backends import get_generator
from testtime.backends.base import BackendError
from testtime.tasks import get_task

from .scripted import client


@pytest.fixture(scope="module")
def embedded():
    try:
        return get_generator("embedded")
    except BackendError as err:
        pytest.skip(f"embedded model not available: {err}")


def test_strategies_over_the_embedded_model(make_server, embedded) -> None:
    task = get_task("arith")
    problem = task.generate(1, 2, seed=0)[0]
    url = make_server(embedded, serialize=True)
    c = client(url)
    resp = c.completions.create(
        model="majority-4/tiny",
        prompt=problem.prompt,
        max_tokens=96,
        seed=1,
        extra_body={"testtime": {"task": "arith"}},
    )
    tt = resp.usage.model_extra["testtime"]
    answer = tt["results"][0]["answer"]
    # the returned text is a candidate that reached the voted answer
    chosen = task.extract_answer(resp.choices[0].text)
    assert answer is not None and chosen is not None
    assert task.answer_key(problem, chosen) == task.answer_key(problem, answer)
    assert sum(tt["results"][0]["votes"].values()) <= 4 and tt["candidates"] == 4
    assert resp.usage.completion_tokens == tt["compute"]["generated_tokens"] > 0
    assert tt["compute"]["policy_flops"] > 0  # a real parameter count
    # Same seed, same samples: the server is reproducible when asked to be.
    again = c.completions.create(
        model="majority-4/tiny",
        prompt=problem.prompt,
        max_tokens=96,
        seed=1,
        extra_body={"testtime": {"task": "arith"}},
    )
    assert again.choices[0].text == resp.choices[0].text

    chunks = list(
        c.chat.completions.create(
            model="ffs-4/tiny",
            messages=[{"role": "user", "content": problem.prompt}],
            max_tokens=96,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "answer:" in text and chunks[-1].usage.completion_tokens > 0


def test_seeded_choices_differ_and_share_one_call(make_server, embedded) -> None:
    problem = get_task("arith").generate(1, 2, seed=0)[0]
    url = make_server(embedded, serialize=True)
    resp = client(url).completions.create(
        model="tiny", prompt=problem.prompt, n=4, seed=1, max_tokens=48
    )
    # One seed for the request: the four samples still differ (they are n=4 of one call).
    assert len({ch.text for ch in resp.choices}) > 1
    assert resp.usage.model_extra["testtime"]["compute"]["model_calls"] == 1
