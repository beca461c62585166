import pytest

from testtime.scale import get_strategy
from testtime.tasks.base import WAIT_CUE

from .conftest import ScriptedGenerator
from .test_budget_forcing import SOLUTION, model


def continuing(prompt):
    """Continues the current derivation (the text after the last wait cue) where it
    stopped; after a forced "answer:", the value of the last derivation."""
    answers = model(prompt)

    def continuations(full):
        if full.endswith("answer:"):
            return answers(full)
        partial = full[len(prompt):].rsplit(WAIT_CUE, 1)[-1]
        return [SOLUTION[len(partial):] if SOLUTION.startswith(partial) else SOLUTION]

    return continuations


def run(problem, task, **options):
    gen = ScriptedGenerator(continuing(problem.prompt))
    return get_strategy("iterative-deepening", **options).solve([problem], gen, task)[0], gen


def test_trigger_at_geometric_checkpoints_at_step_boundaries(task, problem):
    # The derivation is two 6-token lines (the scripted model counts no stop string).
    # Checkpoint 4 falls mid-line ("1+2="): the line is finished ("3", 1 token) and the
    # 5-token cue follows (5 + 5 = 10). Before 16: 6 tokens, a whole line -> cue (21).
    # Before 32: 11 tokens, "...3+3=6" unfinished -> finished (0 tokens) -> cue (37).
    # Before 64: the derivation fits.
    res, gen = run(problem, task, budget=200, initial=4, growth=2.0)
    cand = res.candidates[0]
    assert [params.max_tokens for _, params in gen.calls[:-1]] == [4, 64, 6, 11, 64, 27]
    assert cand.meta["checkpoints"] == [5, 16, 32]
    for piece in cand.text.split(WAIT_CUE)[:-1]:  # every reflection starts on a fresh line
        assert piece.endswith("\n") and SOLUTION.startswith(piece)
    assert cand.meta["extensions"] == 3 and not cand.meta["cut"]
    assert cand.text.endswith(SOLUTION) and res.answer == "6"
    assert res.compute.generated_tokens == 4 + 1 + 6 + 11 + 0 + 12 + 2


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
