import json

import pytest

from testtime.scale import get_strategy
from testtime.scale.r2_mcts import SolutionBank
from testtime.verifiers import get_verifier

from .conftest import ScriptedGenerator
from .stepscript import tree_script

R1 = "1+2=3\n"
TABLE = {
    "": [R1 + "3+3=6\n"],
    R1: ["3+3=6\n"],
    R1 + "3+3=6\n": ["answer: 6\n"],
}
EXAMPLE = ("sum: 1 2 4\n", "1+2=3\n3+4=7\nanswer: 7\n")


def test_bank_retrieves_the_most_similar_and_never_the_query():
    bank = SolutionBank([("sum: 9 8 7\n", "x"), EXAMPLE, ("mul: 5 5\n", "y")])
    hits = bank.retrieve("sum: 1 2 3\n", 2)
    assert [h[0] for h in hits] == ["sum: 1 2 4\n", "sum: 9 8 7\n"]
    assert hits[0][2] > hits[1][2] > 0
    assert all(h[0] != "sum: 9 8 7\n" for h in bank.retrieve("sum: 9 8 7\n", 3))
    bank.add(*EXAMPLE)
    assert len(bank) == 3  # no duplicates


def test_retrieved_examples_condition_every_expansion_and_verified_solutions_join(
    task, problem, tmp_path
):
    path = tmp_path / "bank.json"
    SolutionBank([EXAMPLE]).save(path)
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    strategy = get_strategy("r2-mcts", n=4, branching=1, examples=1, bank=str(path))
    res = strategy.solve([problem], gen, task, get_verifier("oracle", task=task))[0]
    assert res.answer == "6"
    assert res.meta["retrieved"][0]["prompt"] == EXAMPLE[0]
    context = EXAMPLE[0] + EXAMPLE[1]
    assert gen.calls and all(
        p.startswith(context + problem.prompt) for ps, _ in gen.calls for p in ps
    )
    # Context tokens are charged as prompt tokens.
    assert res.compute.prompt_tokens == sum(len(p) for ps, _ in gen.calls for p in ps)
    # The verified solution was banked and saved.
    assert res.meta["banked"] is True
    saved = json.loads(path.read_text())
    assert {"prompt": problem.prompt, "solution": R1 + "3+3=6\nanswer: 6\n"} in saved
    assert len(SolutionBank.load(path)) == 2


def test_unverified_solutions_stay_out(task, problem):
    bank = SolutionBank()
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    strategy = get_strategy("r2-mcts", n=4, branching=1, bank=bank, accept=1.5)
    strategy.solve([problem], gen, task, get_verifier("oracle", task=task))
    assert len(bank) == 0


def test_bad_bank_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bank.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="not a solution bank"):
        get_strategy("r2-mcts", bank=str(path))
