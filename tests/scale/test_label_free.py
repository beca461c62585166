"""Label-free means label-free: every registered strategy, at its defaults and with a
label-free verifier, runs through the harness on a task whose gold labels raise."""

from __future__ import annotations

import pytest

from testtime.scale import STRATEGIES, get_strategy
from testtime.scale.harness import scale
from testtime.tasks.base import split_steps
from testtime.tasks.labels import LabelAccess, SealedTask, grading
from testtime.verifiers import get_verifier
from testtime.verifiers.base import Scores, Verifier

from .conftest import ScriptedGenerator
from .test_compute_optimal import chain_script

OPTIONS = {
    "max_tokens": 48, "step_tokens": 16, "budget": 200, "calibration": 1, "max_n": 2, "probes": 1,
    "beam": False, "calib_seed": 11, "search_budget": 1e6, "initial": 8, "max_steps": 6, "width": 2,
}


class ArithmeticPRM(Verifier):
    """A label-free process verifier: a step ``a+b=c`` scores 0.9 when the sum is right,
    else 0.2 (it checks the arithmetic as written; it never sees the problem's answer)."""

    name = "arith-prm"

    def score(self, problem, solutions):
        steps = []
        for text in solutions:
            row = []
            for step in split_steps(text):
                try:
                    lhs, rhs = step.split("=")
                    row.append(0.9 if sum(int(x) for x in lhs.split("+")) == int(rhs) else 0.2)
                except ValueError:
                    row.append(0.2)
            steps.append(row + [0.5])
        return Scores(steps, tokens=sum(map(len, solutions)), calls=1)


def test_the_sealed_task_raises_on_gold_access_outside_grading(task):
    sealed = SealedTask(task)
    problem = sealed.generate(1, 3, seed=0)[0]
    for read in (lambda: problem.answer, lambda: problem.difficulty,
                 lambda: sealed.equivalent(problem, "6"), lambda: sealed.check_steps(problem, "1+2=3\n"),
                 lambda: sealed.solve(problem)):
        with pytest.raises(LabelAccess):
            read()
    with grading():
        assert problem.answer == "6" and sealed.equivalent(problem, "6")
    fresh = sealed.generate(1, 3, seed=5)[0]  # not a test problem: the generator's own label
    assert sealed.solve(fresh).startswith(fresh.prompt.split()[1])


def test_every_strategy_runs_label_free_at_its_defaults(task, tmp_path):
    sealed = SealedTask(task)
    # MoE-only strategies refuse the scripted (dense) generator; tests/scale/test_dynamic_experts.py
    names = [n for n in STRATEGIES.names() if not getattr(STRATEGIES.get(n), "needs_moe", False)]
    out = scale(sealed, ScriptedGenerator(chain_script(task)), names, [2], tmp_path,
                verifier=ArithmeticPRM(), difficulties=[3], limit=1, options=OPTIONS,
                show_progress=False)
    assert {r["strategy"] for r in out.rows} == set(names)
    assert {r["labels"] for r in out.rows} == {"none"}


@pytest.mark.parametrize("name, options", [
    ("best-of-n", {}),
    ("self-refine", {}),
    ("compute-optimal", {"estimate": "oracle"}),
])
def test_the_oracle_upper_bounds_are_caught_on_a_sealed_task(task, name, options):
    """The guard can fail: an oracle verifier or an oracle difficulty estimate reads labels."""
    sealed = SealedTask(task)
    problems = sealed.generate(2, 3, seed=0)
    verifier = ArithmeticPRM() if "estimate" in options else get_verifier("oracle", task=sealed)
    strategy = get_strategy(name, **{k: v for k, v in {**OPTIONS, **options}.items()
                                     if k in STRATEGIES.get(name).__init__.__code__.co_varnames})
    assert strategy.labels(verifier) != "none"
    with pytest.raises(LabelAccess):
        strategy.solve(problems, ScriptedGenerator(chain_script(task)), sealed, verifier)


def test_a_label_free_run_refuses_upper_bounds_up_front_and_seals_the_rest(task, tmp_path):
    gen = ScriptedGenerator(chain_script(task))
    with pytest.raises(ValueError, match=r"best-of-n \(oracle-verifier\)"):
        scale(task, gen, ["majority", "best-of-n"], [2], tmp_path / "a",
              verifier=get_verifier("oracle", task=task), difficulties=[3], limit=2,
              label_free=True, show_progress=False)
    assert gen.calls == []  # refused before any generation
    with pytest.raises(ValueError, match="gold-difficulty"):
        scale(task, gen, ["compute-optimal"], [1], tmp_path / "b", verifier=ArithmeticPRM(),
              difficulties=[3], limit=2, options={**OPTIONS, "estimate": "oracle"},
              label_free=True, show_progress=False)
    out = scale(task, gen, ["majority", "best-of-n"], [2], tmp_path / "c", verifier=ArithmeticPRM(),
                difficulties=[3], limit=2, label_free=True, show_progress=False)
    assert {r["labels"] for r in out.rows} == {"none"} and all(0 <= r["accuracy"] <= 1 for r in out.rows)
