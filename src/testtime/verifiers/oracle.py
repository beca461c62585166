"""The oracle process verifier: step scores from the task's exact step checker.

Step i scores 1.0 when every step up to and including i is valid, else 0.0
(the label a PRM is trained to predict, as in Lightman et al.'s PRM800K). It
reads the reference, so it is an upper bound for learned verifiers, and it
costs no model tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import VERIFIERS, Scores, Verifier


@VERIFIERS.register("oracle")
class OracleVerifier(Verifier):
    name = "oracle"
    process = True
    reads_labels = True

    def __init__(self, task: Task | None = None) -> None:
        if task is None:
            raise ValueError("verifier 'oracle' needs the task whose step checker it uses")
        if not task.has_step_checker:
            raise ValueError(f"verifier 'oracle' needs a step checker; task {task.name!r} has none")
        self.task = task

    @property
    def num_parameters(self) -> int:
        return 0  # no model: zero verifier FLOPs

    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        steps = []
        for solution in solutions:
            scores, ok = [], True
            for valid in self.task.check_steps(problem, solution):
                ok = ok and bool(valid)
                scores.append(1.0 if ok else 0.0)
            steps.append(scores)
        return Scores(steps=steps, tokens=0, calls=0)
