import pytest

from testtime.scale import get_strategy
from testtime.tasks.base import WAIT_CUE

from .conftest import ScriptedGenerator
from .test_budget_forcing import SOLUTION, model


def run(problem, task, **options):
    gen = ScriptedGenerator(model(problem.prompt))
    return get_strategy("iterative-deepening", **options).solve([problem], gen, task)[0], gen


def test_trigger_at_geometric_checkpoints_until_a_derivation_fits(task, problem):
    # The derivation needs 12 tokens. Checkpoints 4, 8, 16, 32 (cumulative thinking,
    # the 5-token cue included): cut at 4 -> cue (9) -> cut at 16 -> cue (21) -> 11
    # tokens of room before 32 are not enough -> cut at 32 -> cue (37) -> 27 before 64: fits.
    res, gen = run(problem, task, budget=200, initial=4, growth=2.0)
    cand = res.candidates[0]
    assert [params.max_tokens for _, params in gen.calls[:-1]] == [4, 7, 11, 27]
    assert cand.meta["checkpoints"] == [4, 16, 32]
    assert cand.meta["extensions"] == 3 and not cand.meta["cut"]
    assert cand.text.count(WAIT_CUE) == 3 and cand.text.endswith(SOLUTION)
    assert res.answer == "6"
    assert res.compute.generated_tokens == 4 + 7 + 11 + 12 + 2


def test_no_trigger_when_the_first_checkpoint_suffices(task, problem):
    res, gen = run(problem, task, budget=200, initial=64)
    assert res.candidates[0].text == SOLUTION and len(gen.calls) == 2


def test_total_budget_forces_the_answer(task, problem):
    res, _ = run(problem, task, budget=10, initial=4)
    cand = res.candidates[0]
    assert cand.meta["cut"] and cand.meta["thinking_tokens"] == 10
    assert cand.text.endswith("answer: 3\n")


@pytest.mark.parametrize("options", [{"growth": 1.0}, {"initial": 0}, {"budget": -5}])
def test_bad_options(options):
    with pytest.raises(ValueError):
        get_strategy("iterative-deepening", **options)
