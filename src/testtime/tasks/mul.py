"""``mul``: long multiplication of a three-digit number by a d-digit one (difficulty = d).

Prompt ``"mul: 347*86\\n"``; solution: one partial product per non-zero digit of
the second factor, least significant first (``347*6=2082``, ``347*80=27760``),
then a running sum of the partials (``2082+27760=29842``), ``answer: 29842``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from testtime.tasks.base import Problem
from testtime.tasks.synthetic import (
    Step,
    SyntheticTask,
    corrupt_one_step,
    parse_int,
    perturb,
    prompt_body,
)


@dataclass
class _MulState:
    partials: list[int]  # the partial products as written so far
    total: int | None  # the running sum as written (None before the first sum)


class MulTask(SyntheticTask):
    name = "mul"
    levels = (1, 2, 3, 4)

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        if difficulty < 1:
            raise ValueError(f"mul difficulty is the digits of the second factor (>= 1), got {difficulty}")
        rng = random.Random(f"{self.name}-{difficulty}-{seed}")
        problems = []
        for i in range(n):
            a = rng.randint(100, 999)
            b = rng.randint(max(2, 10 ** (difficulty - 1)), 10**difficulty - 1)
            problems.append(
                Problem(
                    id=f"{self.name}-{difficulty}-{seed}-{i}",
                    prompt=f"{self.name}: {a}*{b}\n",
                    answer=str(a * b),
                    task=self.name,
                    difficulty=difficulty,
                )
            )
        return problems

    def parse(self, problem: Problem) -> tuple[int, list[int]]:
        """(first factor, the multipliers of its partial products: 6, 80, ...)."""
        parts = prompt_body(problem, self.name).split("*")
        factors = [parse_int(p) for p in parts]
        if len(factors) != 2 or None in factors or factors[1] == 0:
            raise ValueError(f"malformed mul prompt: {problem.prompt!r}")
        a, b = factors
        digits = str(b)[::-1]
        return a, [int(d) * 10**k for k, d in enumerate(digits) if d != "0"]  # type: ignore[return-value]

    def derive(
        self, problem: Problem, error_at: int | None = None, rng: random.Random | None = None
    ) -> tuple[list[Step], str]:
        a, multipliers = self.parse(problem)

        def result(j: int, exact: int) -> int:
            if j != error_at:
                return exact
            assert rng is not None, "an injected error needs an rng"
            return perturb(exact, rng)

        steps = [Step(a, "*", m, result(j, a * m)) for j, m in enumerate(multipliers)]
        total = steps[0].result
        for p in steps[1:]:
            steps.append(Step(total, "+", p.result, result(len(steps), total + p.result)))
            total = steps[-1].result
        return steps, str(total)

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[Step], str, int]:
        return corrupt_one_step(self.derive, problem, rng)

    def _initial_state(self, problem: Problem) -> _MulState:
        return _MulState([], None)

    def _check_step(
        self, problem: Problem, state: _MulState, index: int, step: Step
    ) -> tuple[bool, _MulState]:
        a, multipliers = self.parse(problem)
        n = len(multipliers)
        if index < n:  # partial products, in order
            legal = (step.left, step.op, step.right) == (a, "*", multipliers[index])
            return legal, _MulState([*state.partials, step.result], None)
        k = index - n + 1  # the k-th sum adds partial k to the running total
        if k >= n:
            return False, state
        left = state.partials[0] if state.total is None else state.total
        legal = (step.left, step.op, step.right) == (left, "+", state.partials[k])
        return legal, _MulState(state.partials, step.result)
