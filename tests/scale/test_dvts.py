from testtime.scale import get_strategy
from testtime.verifiers import get_verifier

from .conftest import ScriptedGenerator
from .stepscript import tree_script

R1, W1 = "1+2=3\n", "1+2=4\n"
RIGHT, WRONG = R1 + "3+3=6\nanswer: 6\n", W1 + "4+3=7\nanswer: 7\n"
TABLE = {
    "": [RIGHT, RIGHT, WRONG, WRONG],
    R1: ["3+3=6\nanswer: 6\n"],
    W1: ["4+3=7\nanswer: 7\n"],
    R1 + "3+3=6\n": ["answer: 6\n"],
    W1 + "4+3=7\n": ["answer: 7\n"],
}


def solve(name, problem, task):
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    res = get_strategy(name, n=4, width=2).solve(
        [problem], gen, task, get_verifier("oracle", task=task)
    )[0]
    return res, gen


def test_subtrees_do_not_compete(task, problem):
    # Beam search: the 2 right first steps win the global top-2, every beam starts right.
    beam, _ = solve("beam", problem, task)
    assert all(c.text.startswith(R1) for c in beam.candidates)
    # DVTS: subtree 1 samples (R, R), subtree 2 samples (W, W); each keeps its own best,
    # so the second subtree survives with a worse prefix than the first's runner-up.
    dvts, gen = solve("dvts", problem, task)
    prompts, params = gen.calls[0]
    assert prompts == [problem.prompt] * 2 and params.n == 2  # N/M = 2 subtrees, M each
    assert dvts.meta["kept_scores"][0] == [[1.0], [0.0]]  # one prefix per subtree
    assert {c.text for c in dvts.candidates} == {RIGHT, WRONG}
    assert len(dvts.candidates) == 4  # N complete solutions, M per subtree
    assert dvts.answer == "6"


def test_dvts_vote_over_all_subtrees(task, problem):
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    res = get_strategy("dvts", n=4, width=2, select="vote").solve(
        [problem], gen, task, get_verifier("oracle", task=task)
    )[0]
    assert res.meta["weighted_votes"] == {"6": 2.0, "7": 0.0}
    assert res.answer == "6"
