import random

from testtime.tasks import get_task
from testtime.tasks.base import Problem
from testtime.tasks.synthetic import format_solution


def test_example_and_zero_digits():
    task = get_task("mul")
    p = Problem("x", "mul: 347*86\n", "29842", "mul", 2)
    assert task.solve(p) == "347*6=2082\n347*80=27760\n2082+27760=29842\nanswer: 29842\n"
    q = Problem("y", "mul: 347*806\n", str(347 * 806), "mul", 3)
    sol = task.solve(q)
    assert "347*0" not in sol and task.is_correct(q, sol) and all(task.check_steps(q, sol))


def test_generated_problems_solve_and_difficulty_is_digits():
    task = get_task("mul")
    for level in task.levels:
        problems = task.generate(50, level, seed=2)
        assert problems == task.generate(50, level, seed=2)
        for p in problems:
            assert len(p.prompt.split("*")[1].strip()) == level
            sol = task.solve(p)
            assert task.is_correct(p, sol) and all(task.check_steps(p, sol))


def test_check_steps_flags_wrong_partials_and_sums():
    task = get_task("mul")
    p = Problem("x", "mul: 347*86\n", "29842", "mul", 2)
    assert task.check_steps(p, "347*6=2082\n347*80=27750\n2082+27750=29832\n") == [True, False, True]
    assert task.check_steps(p, "347*6=2082\n347*8=2776\n") == [True, False]
    assert task.check_steps(p, "347*6=2082\n347*80=27760\n2082+2776=4858\n") == [True, True, False]
    assert task.check_steps(p, "347*80=27760\n") == [False]
    rng = random.Random(0)
    for q in task.generate(30, 3, seed=0):
        steps, answer, j = task.corrupt(q, rng)
        text = format_solution(steps, answer)
        assert not task.is_correct(q, text) and task.check_steps(q, text).index(False) == j
