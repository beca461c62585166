import random

import pytest

from testtime.tasks import get_task
from testtime.tasks.base import Problem
from testtime.tasks.countdown import Expression
from testtime.tasks.synthetic import format_solution

P = Problem("x", "countdown: 3 7 25 50 -> 82\n", "50+25+7", "countdown", 4)


def test_generated_instances_are_solvable_and_deterministic():
    task = get_task("countdown")
    for level in task.levels:
        problems = task.generate(100, level, seed=5)
        assert problems == task.generate(100, level, seed=5)
        for p in problems:
            numbers, target = task.parse(p)
            assert len(numbers) == level and target not in numbers
            sol = task.solve(p)
            assert task.is_correct(p, sol) and all(task.check_steps(p, sol))


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("50+25+7", True),
        ("7+25+50", True),
        ("(3+7)*7+12", False),  # 7 used twice, 12 not given
        ("50+25+7+0", False),  # 0 not given
        ("50+32", False),
        ("3-7+86", False),  # negative intermediate
        ("50+25+", False),
        ("__import__('os')", False),
    ],
)
def test_answer_validity(answer, ok):
    assert get_task("countdown").equivalent(P, answer) is ok


def test_answer_key_groups_spellings_of_one_solution():
    task = get_task("countdown")
    assert task.answer_key(P, "50+25+7") == task.answer_key(P, "7+(25+50)") == "7,25,50=82"
    assert task.answer_key(P, "50+25") == "25,50=75"
    assert task.answer_key(P, "oops") == "oops"


def test_check_steps_tracks_available_numbers():
    task = get_task("countdown")
    assert task.check_steps(P, "50+25=75\n75+7=82\n") == [True, True]
    assert task.check_steps(P, "50+25=75\n75+25=100\n") == [True, False]  # 25 used twice
    assert task.check_steps(P, "50+25=76\n76+7=83\n") == [False, True]
    assert task.check_steps(P, "3-7=4\n") == [False]


def test_expression_parser_precedence_and_steps():
    e = Expression.parse("(50+25)*7-3")
    assert e.value() == 522 and sorted(e.leaves()) == [3, 7, 25, 50]
    assert [str(s) for s in e.steps()] == ["50+25=75", "75*7=525", "525-3=522"]
    assert Expression.parse("2+3*4").value() == 14
    with pytest.raises(ValueError):
        Expression.parse("(2+3")


def test_corrupt_misses_the_target_with_valid_steps():
    task = get_task("countdown")
    rng = random.Random(0)
    for p in task.generate(30, 4, seed=1):
        steps, answer, j = task.corrupt(p, rng)
        text = format_solution(steps, answer)
        assert j is None and not task.is_correct(p, text) and all(task.check_steps(p, text))


def test_corrupt_falls_back_when_every_chain_hits_the_target():
    task = get_task("countdown")
    p = Problem("y", "countdown: 50 50 -> 100\n", "50+50", "countdown", 2)
    steps, answer, j = task.corrupt(p, random.Random(0))
    assert steps == [] and answer == "50" and not task.equivalent(p, answer)
