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


class ContextPRM:
    """Records the prompts it was asked to score under (a learned, label-free verifier)."""

    name, process, reads_labels, relative, num_parameters = "ctx-prm", True, False, False, 10

    def __init__(self):
        self.prompts = []

    def score(self, problem, solutions):
        from testtime.verifiers.base import Scores

        self.prompts.append(problem.prompt)
        return Scores([[0.95] * max(1, s.count("\n")) for s in solutions], tokens=len(problem.prompt))


def test_step_level_retrieval_conditions_expansions_and_the_prm(task, problem):
    # The bank holds a problem whose step "3+3=6" matches this problem's second step.
    coarse = ("mul: 9 9\n", "9*9=81\nanswer: 81\n")
    fine = ("sum: 4 3 3\n", "4+3=7\n3+3=6\nanswer: 6\n")
    bank = SolutionBank([coarse, fine])
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    prm = ContextPRM()
    strategy = get_strategy("r2-mcts", n=4, branching=1, examples=0, step_examples=1, bank=bank)
    res = strategy.solve([problem], gen, task, prm)[0]
    assert res.answer == "6"
    prompts = [p for ps, _ in gen.calls for p in ps]
    assert prompts[0] == problem.prompt  # the root has no step to match yet
    # after the step "3+3=6", the solution holding that very step comes first
    after = [p for p in prompts if p.endswith(problem.prompt + R1 + "3+3=6\n")]
    assert after and all(p.startswith(fine[0] + fine[1]) for p in after)
    assert any(p != problem.prompt for p in prm.prompts)  # the PRM read retrieved context too
    no_aug = ContextPRM()
    get_strategy("r2-mcts", n=4, branching=1, examples=0, bank=SolutionBank([coarse, fine]),
                 augment_prm=False).solve([problem], ScriptedGenerator(tree_script(problem.prompt, TABLE)),
                                          task, no_aug)
    assert set(no_aug.prompts) == {problem.prompt}
