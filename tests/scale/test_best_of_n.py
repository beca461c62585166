from testtime.scale import get_strategy
from testtime.verifiers import get_verifier

from .conftest import ScriptedGenerator

RIGHT = "1+2=3\n3+3=6\nanswer: 6\n"
WRONG = "1+2=3\n3+3=5\nanswer: 5\n"


def test_best_of_n_picks_the_top_scored(task, problem):
    oracle = get_verifier("oracle", task=task)
    gen = ScriptedGenerator({problem.prompt: [WRONG, WRONG, WRONG, RIGHT]})
    res = get_strategy("best-of-n", n=4).solve([problem], gen, task, oracle)[0]
    assert res.answer == "6" and res.meta["score"] == 1.0
    assert [c.score for c in res.candidates] == [0.0, 0.0, 0.0, 1.0]
    # A pool without the right solution: the first of the tied best.
    gen = ScriptedGenerator({problem.prompt: [WRONG]})
    assert get_strategy("best-of-n", n=2).solve([problem], gen, task, oracle)[0].answer == "5"
