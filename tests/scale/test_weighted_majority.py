import pytest

from testtime.scale import get_strategy
from testtime.verifiers import get_verifier

from .conftest import ScriptedGenerator

RIGHT = "1+2=3\n3+3=6\nanswer: 6\n"
RIGHT_SLOPPY = "1+2=4\n3+3=6\nanswer: 6\n"  # right answer, a broken step
WRONG = "1+2=3\n3+3=5\nanswer: 5\n"


def test_weighted_majority_uses_scores_and_aggregation(task, problem):
    texts = [WRONG, WRONG, WRONG, RIGHT, RIGHT_SLOPPY]
    oracle = get_verifier("oracle", task=task)
    # Plain majority says 5; the oracle weights (last: 0 for every WRONG) say 6.
    gen = ScriptedGenerator({problem.prompt: texts})
    assert get_strategy("majority", n=5).solve([problem], gen, task)[0].answer == "5"
    gen = ScriptedGenerator({problem.prompt: texts})
    res = get_strategy("weighted-majority", n=5).solve([problem], gen, task, oracle)[0]
    assert res.answer == "6"
    assert res.meta["weighted_votes"] == {"5": 0.0, "6": 1.0}
    # "mean" credits WRONG's valid first step: 3 × 0.5 = 1.5 beats 1.0 + 0.0.
    gen = ScriptedGenerator({problem.prompt: texts})
    res = get_strategy("weighted-majority", n=5, aggregation="mean").solve([problem], gen, task, oracle)[0]
    assert res.answer == "5"
    assert res.candidates[0].step_scores == [1.0, 0.0]


def test_weighted_majority_needs_a_verifier(task, problem):
    gen = ScriptedGenerator({problem.prompt: [RIGHT]})
    with pytest.raises(ValueError, match="needs a verifier"):
        get_strategy("weighted-majority").solve([problem], gen, task)
    assert gen.calls == []  # refused before any generation
    with pytest.raises(ValueError, match="aggregation"):
        get_strategy("weighted-majority", aggregation="max")
