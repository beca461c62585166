"""The built-in problems' exact checks."""

from __future__ import annotations

import math

import pytest

from testtime.programs.problems import PROBLEMS, CirclePacking, FirstAutocorrelation, Invalid


def grid() -> dict:
    """26 touching circles of radius 1/16 on the 8 x 8 grid (exact binary fractions)."""
    centers = [[(2 * i + 1) / 16, (2 * j + 1) / 16] for j in range(8) for i in range(8)][:26]
    return {"centers": centers, "radii": [1 / 16] * 26}


def test_circle_packing_scores_a_valid_packing():
    score, details = CirclePacking().check(grid())
    assert score == 26 / 16 and details["n"] == 26


def test_circle_packing_tolerance_is_zero():
    packing = grid()  # circle 9 touches 1, 8, 10 and 17 exactly
    packing["radii"][9] = math.nextafter(1 / 16, 1)  # one ulp more: an overlap
    with pytest.raises(Invalid, match="overlap"):
        CirclePacking().check(packing)
    packing = grid()
    packing["radii"][7] = math.nextafter(1 / 16, 1)  # circle 7 touches the right side
    with pytest.raises(Invalid, match="overlap|leaves"):
        CirclePacking().check(packing)
    # 0.1 + 0.2 * 4 is 0.9000000000000001 in floats: radius 0.1 there leaves the square
    with pytest.raises(Invalid, match="leaves"):
        CirclePacking(n=1).check({"centers": [[0.1 + 0.2 * 4, 0.5]], "radii": [0.1]})


def test_the_baseline_program_is_valid():
    from testtime.programs.sandbox import Sandbox

    for name in ("circle-packing", "autocorrelation"):
        problem = PROBLEMS.create(name)
        run = Sandbox().run(problem.baseline, problem.entry)
        assert run.ok, run.reason
        score = problem.check(run.value)[0]
        assert score == pytest.approx({"circle-packing": 2.5414, "autocorrelation": 2.0}[name], abs=1e-4)


@pytest.mark.parametrize("value, message", [
    ({"centers": [[0.5, 0.5]] * 26, "radii": [0.0] * 25}, "expected 26"),
    ({"centers": [[0.05, 0.5]] + [[0.5, 0.5]] * 25, "radii": [0.1] + [0.0] * 25}, "leaves"),
    ({"centers": [[float("nan"), 0.5]] * 26, "radii": [0.0] * 26}, "finite"),
    ({"centers": [[0.5, 0.5]] * 26, "radii": [-0.1] + [0.0] * 25}, "negative"),
    ("garbage", "expected"),
    ({"centers": "xy", "radii": [0.0] * 26}, "pairs"),
])
def test_circle_packing_rejects_bad_solutions(value, message):
    with pytest.raises(Invalid, match=message):
        CirclePacking().check(value)


def test_autocorrelation_bound():
    problem = FirstAutocorrelation()
    assert problem.check([1.0] * 40)[0] == pytest.approx(2.0)
    assert problem.check([3.0] * 7)[0] == pytest.approx(2.0)  # scale- and n-free for constants
    # h = (1, 2): h * h = (1, 4, 4), so the bound is 2 * 2 * 4 / 3^2 < 2
    assert problem.check({"heights": [1.0, 2.0]})[0] == pytest.approx(2 * 2 * 4 / 9)


@pytest.mark.parametrize("value, message", [
    ([1.0, -0.5], ">= 0"), ([0.0, 0.0], "zero"), ([], "1 to"), ([float("inf")], "finite"),
    ([[1.0]], "1 to"), ("abc", "heights"), ([1.0] * 5000, "1 to"),
])
def test_autocorrelation_rejects_bad_solutions(value, message):
    with pytest.raises(Invalid, match=message):
        FirstAutocorrelation().check(value)


def test_registry_names_the_problems():
    assert set(PROBLEMS.names()) == {"circle-packing", "autocorrelation", "countdown-closest"}


def test_countdown_closest_knows_its_optimum_and_checks_answers():
    from testtime.programs.problems.countdown import CountdownClosest, reachable, unreachable_near

    assert reachable((2, 3)) == {1, 2, 3, 5, 6}
    assert unreachable_near((2, 3), 4) == 4 and unreachable_near((2, 3), 6) == 7
    problem = CountdownClosest()
    assert problem.target not in reachable(tuple(sorted(problem.numbers)))
    assert problem.best_known == -min(abs(v - problem.target) for v in reachable(tuple(sorted(problem.numbers))))
    assert problem.check(problem.baseline)[0] == -abs(max(problem.numbers) - problem.target)
    a, b = sorted(problem.numbers)[-2:]
    score, details = problem.check(f"{a}*{b}={a * b}\nanswer: {a}*{b}")
    assert details["reached"] == a * b and score == -abs(a * b - problem.target)
    for bad in ("answer: 1000*1000", f"answer: {a}*{a}*{a}*{a}*{a}", "no answer here"):
        with pytest.raises(Invalid, match="not an expression"):
            problem.check(bad)
    assert problem.read("x=1\nanswer: 2+3\n") == "answer: 2+3" and problem.read("none") is None
