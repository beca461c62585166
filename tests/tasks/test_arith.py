import random

import pytest

from testtime.tasks import get_task
from testtime.tasks.base import Problem, extract_final_answer
from testtime.tasks.synthetic import format_solution


def test_generate_is_deterministic_and_seed_dependent():
    task = get_task("arith")
    a = task.generate(20, 6, seed=3)
    assert a == task.generate(20, 6, seed=3)
    assert a != task.generate(20, 6, seed=4)
    assert all(p.difficulty == 6 and len(p.prompt.split()) == 8 for p in a)


def test_values_stay_in_range_and_solution_is_valid():
    task = get_task("arith")
    for level in task.levels:
        for p in task.generate(100, level, seed=0):
            sol = task.solve(p)
            assert task.is_correct(p, sol)
            assert all(task.check_steps(p, sol))
            for line in sol.splitlines()[:-1]:
                assert 0 <= int(line.split("=")[1]) <= 99


def test_example_format():
    task = get_task("arith")
    p = Problem("x", "arith: 7 +3 *2 -5\n", "15", "arith", 3)
    assert task.solve(p) == "7+3=10\n10*2=20\n20-5=15\nanswer: 15\n"


@pytest.mark.parametrize(
    "solution, expected",
    [
        ("7+3=10\n10*2=20\n20-5=15\nanswer: 15\n", [True, True, True]),
        ("7+3=11\n11*2=22\n22-5=17\nanswer: 17\n", [False, True, True]),  # slip carried on
        ("7+3=10\n10*3=30\n30-5=25\n", [True, False, True]),  # wrong operation
        ("7+3=10\n9*2=18\n18-5=13\n", [True, False, True]),  # left operand not the running value
        ("7+3=10\n10*2=20\n20-5=15\n15+1=16\n", [True, True, True, False]),  # extra step
        ("7+3=10\nten*2=20\n", [True, False]),
        ("7+3=10\n10*2=21\nwait\n7+3=10\n10*2=20\n", [True, False, True, True, True]),
    ],
)
def test_check_steps_catches_bad_steps(solution, expected):
    task = get_task("arith")
    p = Problem("x", "arith: 7 +3 *2 -5\n", "15", "arith", 3)
    assert task.check_steps(p, solution) == expected


def test_corruption_is_caught_at_the_injected_step():
    task = get_task("arith")
    rng = random.Random(0)
    for p in task.generate(50, 6, seed=1):
        steps, answer, j = task.corrupt(p, rng)
        text = format_solution(steps, answer)
        assert not task.is_correct(p, text)
        assert task.check_steps(p, text).index(False) == j
        assert extract_final_answer(text) == answer


def test_equivalence_and_bad_prompt():
    task = get_task("arith")
    p = task.generate(1, 2, seed=0)[0]
    assert task.equivalent(p, p.answer) and task.equivalent(p, f" {p.answer} ")
    assert not task.equivalent(p, "0" + p.answer) and not task.equivalent(p, "x")
    with pytest.raises(ValueError, match="arith difficulty"):
        task.generate(1, 0, seed=0)
    with pytest.raises(ValueError, match="not a arith prompt"):
        task.solve(Problem("y", "mul: 3*4\n", "12", "mul"))
