import pytest

from testtime.scale import get_strategy
from testtime.verifiers import get_verifier
from testtime.verifiers.base import Scores, Verifier

from .conftest import ScriptedGenerator

RIGHT = "1+2=3\n3+3=6\nanswer: 6\n"
WRONG = "1+2=3\n3+3=7\nanswer: 7\n"  # step 2 is wrong


def model(prompt):
    """First attempt wrong; told which step is wrong it fixes it; a bare "revise" does not help."""

    def continuations(full):
        if full.endswith("revise step 2\n"):
            return [RIGHT]
        return [WRONG]

    return continuations


class Outcome(Verifier):
    name = "outcome"
    process = False

    def __init__(self, task):
        self.task = task

    def score(self, problem, solutions):
        return Scores(
            [[1.0 if self.task.is_correct(problem, s) else 0.0] for s in solutions],
            tokens=7,
            calls=1,
        )


def run(problem, task, verifier, **options):
    gen = ScriptedGenerator(model(problem.prompt))
    return get_strategy("self-refine", **options).solve([problem], gen, task, verifier)[0], gen


def test_verifier_feedback_names_the_first_wrong_step(task, problem):
    res, gen = run(problem, task, get_verifier("oracle", task=task), turns=4)
    # attempt 1 (wrong at step 2) -> "revise step 2" -> attempt 2 right -> accepted, stop
    assert len(gen.calls) == 2
    assert gen.calls[1][0] == [problem.prompt + WRONG + "revise step 2\n"]
    assert [c.meta["feedback"] for c in res.candidates] == ["revise step 2\n", None]
    assert res.meta["turns_used"] == [2] and res.answer == "6"


def test_without_a_verifier_every_turn_is_used(task, problem):
    res, gen = run(problem, task, None, turns=3)
    assert len(gen.calls) == 3
    assert all(ps[0].endswith(WRONG + "revise\n") for ps, _ in gen.calls[1:])
    # conditioned on the previous attempt only, not the whole history
    assert gen.calls[2][0] == [problem.prompt + WRONG + "revise\n"]
    assert res.answer == "7" and res.meta["turns_used"] == [3]


def test_outcome_verifier_gives_a_bare_revise_and_is_charged(task, problem):
    res, gen = run(problem, task, Outcome(task), turns=2)
    assert gen.calls[1][0][0].endswith("revise\n")
    assert res.compute.verifier_tokens == 14 and res.compute.verifier_calls == 2


def test_best_selection_needs_a_verifier(task, problem):
    with pytest.raises(ValueError, match="needs a verifier"):
        run(problem, task, None, select="best")


def test_scaling_3d_runs_parallel_budget_forced_chains(task, problem):
    gen = ScriptedGenerator(
        lambda full: (
            [" 6\n" if "3+3=6" in full.rsplit("revise", 1)[-1] else " 7\n"]
            if full.endswith("answer:")
            else model(problem.prompt)(full)
        )
    )
    strategy = get_strategy("scaling-3d", n=3, turns=2, budget=64, waits=0)
    res = strategy.solve([problem], gen, task, get_verifier("oracle", task=task))[0]
    # every call serves the 3 chains together; thinking stops at "answer:"
    assert all(len(ps) == 3 for ps, _ in gen.calls)
    assert gen.calls[0][1].stop == ("answer:",)
    assert res.meta["turns_used"] == [2, 2, 2]
    assert res.meta["votes"] == {"6": 3.0}
    assert len(res.candidates) == 6 and all(c.meta["extensions"] == 0 for c in res.candidates)
    assert res.compute.generated_tokens == sum(c.num_tokens for c in res.candidates)
