import pytest

from testtime.scale import get_strategy

from .conftest import ScriptedGenerator

RIGHT = "1+2=3\n3+3=6\nanswer: 6\n"
WRONG7 = "1+2=4\n4+3=7\nanswer: 7\n"
WRONG5 = "1+2=3\n3+3=5\nanswer: 5\n"


def test_majority_picks_the_mode(task, problem):
    gen = ScriptedGenerator({problem.prompt: [WRONG7, RIGHT, WRONG5, RIGHT, RIGHT]})
    res = get_strategy("majority", n=5).solve([problem], gen, task)[0]
    assert res.answer == "6"
    assert res.meta["votes"] == {"7": 1.0, "6": 3.0, "5": 1.0}
    assert len(res.candidates) == 5
    assert res.compute.generated_tokens == 3 * len(RIGHT) + len(WRONG7) + len(WRONG5)
    assert res.compute.model_calls == 1 and res.compute.wall_s > 0


def test_majority_ignores_unanswered_and_validates_options(task, problem):
    gen = ScriptedGenerator({problem.prompt: ["1+2=3\n", WRONG7, "no answer\n"]})
    assert get_strategy("majority", n=3).solve([problem], gen, task)[0].answer == "7"
    with pytest.raises(ValueError, match="n must be"):
        get_strategy("majority", n=0)
    with pytest.raises(ValueError, match="temperature"):
        get_strategy("majority", temperature=-1)
