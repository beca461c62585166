"""Monte Carlo tree search over solution steps, valued by a PRM (spec §2, §11).

Nodes are partial solutions. Each simulation selects a leaf by UCT
(Kocsis & Szepesvári, 2006): Q(c) + c_uct · sqrt(ln N(parent) / N(c)), expands
it by sampling ``branching`` candidate next steps, values every new node with
the PRM's aggregated score of its prefix (no rollout) and backs the values up
to the root. Re-selecting a complete solution re-adds its value. The answer is
chosen among the complete solutions in the tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult
from testtime.scale.common import check_positive
from testtime.scale.stepwise import StepExpander, StepSearchStrategy, choose_answer, is_complete
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


@dataclass
class Node:
    path: Candidate
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def backup(self, value: float) -> None:
        node: Node | None = self
        while node is not None:
            node.visits += 1
            node.value_sum += value
            node = node.parent


def uct(child: Node, parent_visits: int, c: float) -> float:
    """Mean value plus the exploration bonus; unvisited children come first."""
    if child.visits == 0:
        return math.inf
    return child.q + c * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


def select_leaf(root: Node, c: float) -> Node:
    """Descend by UCT (first child on ties) to a node without children."""
    node = root
    while node.children:
        node = max(node.children, key=lambda ch: uct(ch, node.visits, c))
    return node


def run_mcts(
    expander: StepExpander,
    root: Node,
    *,
    simulations: int,
    branching: int,
    c: float,
    max_steps: int,
    temperature: float,
) -> None:
    for _ in range(simulations):
        leaf = select_leaf(root, c)
        if is_complete(leaf.path):
            leaf.backup(leaf.path.score or 0.0)
            continue
        depth = leaf.path.meta.get("depth", 0)
        (kids,) = expander.extend(
            [leaf.path], branching, temperature, to_end=depth + 1 >= max_steps
        )
        expander.score(kids)
        for kid in kids:
            node = Node(kid, parent=leaf)
            leaf.children.append(node)
            node.backup(kid.score or 0.0)  # the kid's PRM value, up to the root


def complete_paths(root: Node) -> list[Candidate]:
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if is_complete(node.path):
            out.append(node.path)
        stack.extend(reversed(node.children))
    return out


@STRATEGIES.register("mcts")
class MCTS(StepSearchStrategy):
    name = "mcts"

    def __init__(
        self,
        n: int = 16,
        branching: int = 3,
        c_uct: float = 1.0,
        max_steps: int = 40,
        temperature: float = 0.8,
        step_tokens: int = 64,
        max_tokens: int = 256,
        aggregation: str = "last",
        select: str = "score",
        seed: int | None = 0,
    ) -> None:
        """``n`` simulations, each expanding one leaf into ``branching`` steps."""
        super().__init__(
            n, temperature, step_tokens, max_tokens, max_steps, aggregation, select, seed
        )
        self.branching = check_positive("branching", branching)
        if c_uct < 0:
            raise ValueError(f"c_uct must be >= 0, got {c_uct}")
        self.c_uct = c_uct

    def context(self, problem: Problem) -> tuple[str, dict]:
        """Text placed before the prompt (none here; R2-MCTS puts retrieved examples)."""
        return "", {}

    def search(self, problem: Problem, expander: StepExpander) -> tuple[list[Candidate], Node]:
        root = Node(Candidate("", None, 0, meta={"depth": 0}))
        run_mcts(
            expander,
            root,
            simulations=self.n,
            branching=self.branching,
            c=self.c_uct,
            max_steps=self.max_steps,
            temperature=self.temperature,
        )
        finished = complete_paths(root)
        if not finished:
            # No simulation reached an end: finish the most visited path greedily.
            node = root
            while node.children:
                node = max(node.children, key=lambda ch: ch.visits)
            (kids,) = expander.extend([node.path], 1, 0.0, to_end=True)
            expander.score(kids)
            finished = kids
        return finished, root

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        compute = Compute()
        context, meta = self.context(problem)
        expander = self.expander(problem, task, generator, verifier, compute, context=context)
        finished, root = self.search(problem, expander)
        answer, chosen = choose_answer(finished, problem, task, self.select, self.aggregation)
        meta.update(chosen)
        meta["root_visits"] = root.visits
        meta["root_children_visits"] = [ch.visits for ch in root.children]
        return ProblemResult(problem.id, answer, finished, compute, meta=meta)
