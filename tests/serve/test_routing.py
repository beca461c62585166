"""Model-name prefixes and ``testtime`` options resolve to library strategies."""

from __future__ import annotations

import pytest

from testtime.serve.errors import APIError
from testtime.serve.routing import build_strategy, make_plan, parse_model


def test_parse_model_names() -> None:
    assert parse_model("tiny", "tiny") == ("sample", {})
    assert parse_model("majority-16/tiny", "tiny") == ("majority", {"n": 16})
    assert parse_model("best-of-8/tiny", "tiny") == ("best-of-n", {"n": 8})
    assert parse_model("weighted-majority/tiny", "tiny") == ("weighted-majority", {})
    assert parse_model("beam-4x8/tiny", "tiny") == ("beam", {"width": 4, "n": 8})
    assert parse_model("self-refine-3/tiny", "tiny") == ("self-refine", {"turns": 3})
    # Served model names may contain slashes themselves.
    assert parse_model("ffs-4/org/model-7b", "org/model-7b") == ("ffs", {"n": 4})


@pytest.mark.parametrize(
    ("model", "status", "fragment"),
    [
        ("nope/tiny", 404, "unknown strategy 'nope'"),
        ("majority-16/other", 404, "not served"),
        ("majority-4x8/tiny", 400, "no beam width"),
        ("sample-4/tiny", 400, "takes no budget"),
    ],
)
def test_bad_model_names(model: str, status: int, fragment: str) -> None:
    with pytest.raises(APIError, match=fragment) as err:
        parse_model(model, "tiny")
    assert err.value.status == status


def test_plan_merges_prefix_sampling_and_testtime_options() -> None:
    plan = make_plan(
        "majority-16/tiny",
        "tiny",
        {"n": 4, "verifier": "prm"},
        {"seed": None, "temperature": 0.5},
        max_n=64,
    )
    assert plan.strategy == "majority" and plan.verifier == "prm"
    assert plan.options == {"n": 4, "seed": None, "temperature": 0.5}  # testtime n wins
    strategy = build_strategy(plan)
    assert (strategy.n, strategy.temperature, strategy.seed) == (4, 0.5, None)
    # greedy takes no temperature: request-level sampling fields are dropped for it
    assert make_plan("greedy/tiny", "tiny", {}, {"temperature": 0.5}, max_n=64).options == {}


@pytest.mark.parametrize(
    ("model", "testtime", "fragment"),
    [
        ("majority-4/tiny", {"strategy": "ffs"}, "asks for strategy 'majority'"),
        ("tiny", {"strategy": 3}, "must be a string"),
        ("tiny", {"strategy": "majority", "n": 999}, "limit of 64"),
        ("greedy/tiny", {"temperature": 0.5}, "has no option 'temperature'"),
    ],
)
def test_plan_errors(model: str, testtime: dict, fragment: str) -> None:
    with pytest.raises(APIError, match=fragment) as err:
        make_plan(model, "tiny", testtime, {}, max_n=64)
    assert err.value.status == 400


def test_bad_option_value_is_a_400() -> None:
    with pytest.raises(APIError, match="strategy 'ffs'.*mode") as err:
        build_strategy(make_plan("ffs/tiny", "tiny", {"mode": "sideways"}, {}, max_n=64))
    assert err.value.status == 400

