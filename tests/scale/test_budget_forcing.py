import pytest

from testtime.scale import get_strategy
from testtime.tasks.base import WAIT_CUE

from .conftest import ScriptedGenerator

SOLUTION = "1+2=3\n3+3=6\nanswer: 6\n"  # 12 thinking characters (= tokens) before "answer:"


def model(prompt):
    """Writes the solution; after a forced "answer:", writes the value of the last derivation."""

    def continuations(full):
        if full.endswith("answer:"):
            last = full.rsplit(WAIT_CUE, 1)[-1]
            return [" 6\n" if "3+3=6" in last else " 3\n"]
        return [SOLUTION]

    return continuations


def run(problem, task, **options):
    gen = ScriptedGenerator(model(problem.prompt))
    return get_strategy("budget-forcing", **options).solve([problem], gen, task)[0], gen


def test_wait_cue_extends_thinking_up_to_w_times(task, problem):
    res, gen = run(problem, task, budget=100, waits=2)
    prompts = [ps[0] for ps, _ in gen.calls]
    # think, wait, think, wait, think, then the forced answer
    assert [p.count(WAIT_CUE) for p in prompts] == [0, 1, 2, 2]
    assert all(params.stop == ("answer:",) for _, params in gen.calls[:3])
    assert prompts[-1].endswith("answer:") and gen.calls[-1][1].stop == ("\n",)
    cand = res.candidates[0]
    assert cand.text == ("1+2=3\n3+3=6\n" + WAIT_CUE) * 2 + "1+2=3\n3+3=6\nanswer: 6\n"
    assert res.answer == "6" and cand.meta["extensions"] == 2 and not cand.meta["cut"]
    # thinking: 3 derivations of 12 tokens + 2 cues of 5; generated: 36 + the answer " 6"
    assert cand.meta["thinking_tokens"] == 3 * 12 + 2 * len(WAIT_CUE)
    assert res.compute.generated_tokens == cand.num_tokens == 36 + 2


def test_budget_cuts_thinking_and_forces_the_answer(task, problem):
    res, gen = run(problem, task, budget=8, waits=3)
    cand = res.candidates[0]
    assert gen.calls[0][1].max_tokens == 8
    assert cand.text == "1+2=3\n3+\nanswer: 3\n"  # cut mid-step, forced on its own line
    assert cand.meta["cut"] and cand.meta["extensions"] == 0 and res.answer == "3"


def test_unlimited_waits_fill_the_budget(task, problem):
    res, gen = run(problem, task, budget=40, waits=None)
    cand = res.candidates[0]
    # 12 + 5 + 12 + 5 = 34 < 40: a third derivation starts and is cut after 6 tokens
    assert cand.meta["extensions"] == 2 and cand.meta["cut"]
    assert cand.meta["thinking_tokens"] == 40
    assert gen.calls[2][1].max_tokens == 6
    # as in s1, the answer is forced right after the cut partial derivation
    assert cand.text.startswith("1+2=3\n3+3=6\n" + WAIT_CUE + "1+2=3\n3+3=6\n" + WAIT_CUE)
    assert cand.text.split(WAIT_CUE)[-1].startswith("1+2=3\n")  # the cut third one, then answer:
    # truncate_cut (an explicit option) drops the cut derivation; its 6 tokens still count
    res, _ = run(problem, task, budget=40, waits=None, truncate_cut=True)
    cand = res.candidates[0]
    assert cand.text == "1+2=3\n3+3=6\n" + WAIT_CUE + "1+2=3\n3+3=6\nanswer: 6\n"
    assert res.answer == "6" and res.compute.generated_tokens == 12 + 12 + 6 + 2


def test_no_waits_is_a_single_pass(task, problem):
    res, gen = run(problem, task, budget=100, waits=0)
    assert len(gen.calls) == 2 and res.candidates[0].text == SOLUTION and res.answer == "6"


@pytest.mark.parametrize("options", [{"budget": 0}, {"waits": -1}, {"answer_tokens": 0}])
def test_bad_options(options):
    with pytest.raises(ValueError):
        get_strategy("budget-forcing", **options)
