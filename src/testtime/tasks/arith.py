"""``arith``: a start value and k operations on a running value (difficulty = k).

Prompt ``"arith: 7 +3 *2 -5\\n"``; solution ``7+3=10``, ``10*2=20``, ``20-5=15``,
``answer: 15``. Every running value stays in 0..99 (``*`` by 2..9, ``+``/``-``
by 1..99), so a step is at most a two-digit operation.
"""

from __future__ import annotations

import random

from testtime.tasks.base import Problem
from testtime.tasks.synthetic import (
    Step,
    SyntheticTask,
    apply_op,
    corrupt_one_step,
    parse_int,
    perturb,
    prompt_body,
)

MAX_VALUE = 99


class ArithTask(SyntheticTask):
    name = "arith"
    levels = (2, 4, 6, 8, 10)

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        if difficulty < 1:
            raise ValueError(f"arith difficulty is the number of operations (>= 1), got {difficulty}")
        rng = random.Random(f"{self.name}-{difficulty}-{seed}")
        problems = []
        for i in range(n):
            start = value = rng.randint(1, 99)
            ops = []
            for _ in range(difficulty):
                op, operand = _random_op(value, rng)
                ops.append(f"{op}{operand}")
                value = apply_op(value, op, operand)
            problems.append(
                Problem(
                    id=f"{self.name}-{difficulty}-{seed}-{i}",
                    prompt=f"{self.name}: {start} {' '.join(ops)}\n",
                    answer=str(value),
                    task=self.name,
                    difficulty=difficulty,
                )
            )
        return problems

    def parse(self, problem: Problem) -> tuple[int, list[tuple[str, int]]]:
        """(start, [(op, operand), ...]) from the prompt."""
        tokens = prompt_body(problem, self.name).split()
        start = parse_int(tokens[0]) if tokens else None
        ops = [(t[:1], parse_int(t[1:])) for t in tokens[1:]]
        if start is None or any(op not in "+-*" or x is None for op, x in ops) or not ops:
            raise ValueError(f"malformed arith prompt: {problem.prompt!r}")
        return start, ops  # type: ignore[return-value]

    def derive(
        self, problem: Problem, error_at: int | None = None, rng: random.Random | None = None
    ) -> tuple[list[Step], str]:
        value, ops = self.parse(problem)
        steps = []
        for j, (op, operand) in enumerate(ops):
            result = apply_op(value, op, operand)
            if j == error_at:
                assert rng is not None, "an injected error needs an rng"
                result = perturb(result, rng)
            steps.append(Step(value, op, operand, result))
            value = result
        return steps, str(value)

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[Step], str, int]:
        return corrupt_one_step(self.derive, problem, rng)

    def _initial_state(self, problem: Problem) -> int:
        return self.parse(problem)[0]

    def _check_step(self, problem: Problem, state: int, index: int, step: Step) -> tuple[bool, int]:
        ops = self.parse(problem)[1]
        legal = index < len(ops) and (step.left, step.op, step.right) == (state, *ops[index])
        return legal, step.result


def _random_op(value: int, rng: random.Random) -> tuple[str, int]:
    """An operation that keeps the running value within 0..MAX_VALUE."""
    choices = []
    if value + 1 <= MAX_VALUE:
        choices.append("+")
    if value >= 1:
        choices.append("-")
    if 2 <= value <= MAX_VALUE // 2:
        choices.append("*")
    op = rng.choice(choices)
    if op == "+":
        return op, rng.randint(1, min(99, MAX_VALUE - value))
    if op == "-":
        return op, rng.randint(1, min(99, value))
    return op, rng.randint(2, min(9, MAX_VALUE // value))

