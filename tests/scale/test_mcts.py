import math

import pytest

from testtime.scale import get_strategy
from testtime.scale.base import Candidate, Compute
from testtime.scale.mcts import Node, select_leaf, uct
from testtime.verifiers import get_verifier

from .conftest import ScriptedGenerator
from .stepscript import tree_script

R1, W1 = "1+2=3\n", "1+2=4\n"
TABLE = {
    "": [W1 + "4+3=7\n", R1 + "3+3=6\n", W1 + "4+3=7\n"],
    R1: ["3+3=6\n", "3+3=7\n", "3+3=6\n"],
    W1: ["4+3=7\n"],
    R1 + "3+3=6\n": ["answer: 6\n"],
    R1 + "3+3=7\n": ["answer: 7\n"],
    W1 + "4+3=7\n": ["answer: 7\n"],
}


def test_uct_formula_and_unvisited_first():
    parent = Node(Candidate("", None, 0), visits=10)
    a = Node(Candidate("a", None, 1), parent, visits=4, value_sum=3.0)
    b = Node(Candidate("b", None, 1), parent, visits=0)
    assert uct(a, 10, 1.5) == pytest.approx(0.75 + 1.5 * math.sqrt(math.log(10) / 4))
    assert uct(b, 10, 1.5) == math.inf
    parent.children = [a, b]
    assert select_leaf(parent, 1.5) is b
    # Without exploration the best mean wins.
    c = Node(Candidate("c", None, 1), parent, visits=2, value_sum=1.8)
    parent.children = [a, c]
    assert select_leaf(parent, 0.0) is c


def walk(node):
    yield node
    for ch in node.children:
        yield from walk(ch)


def test_mcts_visit_counts_backup_and_answer(task, problem):
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    strategy = get_strategy("mcts", n=6, branching=3, c_uct=0.5)
    oracle = get_verifier("oracle", task=task)
    res = strategy.solve([problem], gen, task, oracle)[0]
    assert res.answer == "6" and res.meta["score"] == 1.0
    # Every simulation is one expansion call (no re-visit of terminals happened early).
    assert res.compute.model_calls == len(gen.calls) <= 6
    # The root's visits are its children's; the right first step drew the most.
    visits = res.meta["root_children_visits"]
    assert res.meta["root_visits"] == sum(visits)
    assert visits[1] == max(visits) and visits[1] > visits[0]


def test_tree_invariants(task, problem):
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    strategy = get_strategy("mcts", n=8, branching=3)
    oracle = get_verifier("oracle", task=task)
    expander = strategy.expander(problem, task, gen, oracle, Compute())
    finished, root = strategy.search(problem, expander)
    for node in walk(root):
        if node is root:
            continue
        if node.children:  # its own PRM evaluation plus everything backed up through it
            assert node.visits == 1 + sum(ch.visits for ch in node.children)
            assert node.value_sum == pytest.approx(
                node.path.score + sum(ch.value_sum for ch in node.children)
            )
        else:  # a leaf: evaluated once, a complete one again at every re-selection
            assert node.value_sum == pytest.approx(node.visits * node.path.score)
            assert node.visits == 1 or node.path.meta["complete"]
    assert root.visits == sum(ch.visits for ch in root.children)
    assert {c.answer for c in finished} <= {"6", "7"} and finished


def test_unfinished_search_completes_the_most_visited_path(task, problem):
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    res = get_strategy("mcts", n=1, branching=3).solve(
        [problem], gen, task, get_verifier("oracle", task=task)
    )[0]
    # One simulation only expanded the root: the answer comes from a greedy completion.
    _, last = gen.calls[-1]
    assert last.temperature == 0 and last.stop == ()
    assert len(res.candidates) == 1 and res.candidates[0].meta["complete"]
