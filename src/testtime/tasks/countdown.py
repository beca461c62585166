"""``countdown``: reach a target from given numbers with + - * (difficulty = count of numbers).

Prompt ``"countdown: 3 7 25 50 -> 82\\n"``; solution steps combine two available
values (a given number or an earlier result, each used at most once), e.g.
``50+25=75``, ``75+7=82``, and the answer line is the whole expression:
``answer: 50+25+7``. The answer is checked exactly from the expression alone:
it must parse (integers, + - *, parentheses), use only given numbers, each at most
once, keep every intermediate value non-negative and equal the target.

Generated instances are built from a random solution, so all are solvable; a
solution is a chain (running value op next number). Many targets have several
solutions, which is what makes sampling + verification beat greedy decoding.

Voting key: the sorted numbers an expression uses and the value it reaches
(``"7,25,50=82"``), so two spellings of the same solution vote together while
answers that miss the target or reuse numbers form their own groups.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from testtime.tasks.base import Problem
from testtime.tasks.synthetic import Step, SyntheticTask, apply_op, parse_int, prompt_body

MAX_VALUE = 999
BIG_NUMBERS = (25, 50, 75, 100)


class CountdownTask(SyntheticTask):
    name = "countdown"
    levels = (3, 4, 5)

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        if difficulty < 2:
            raise ValueError(f"countdown difficulty is the count of numbers (>= 2), got {difficulty}")
        rng = random.Random(f"{self.name}-{difficulty}-{seed}")
        problems = []
        while len(problems) < n:
            numbers = sorted(
                rng.choice(BIG_NUMBERS) if rng.random() < 0.3 else rng.randint(1, 10)
                for _ in range(difficulty)
            )
            used = rng.sample(numbers, rng.randint(max(2, difficulty - 1), difficulty))
            steps = _random_chain(used, rng)
            target = steps[-1].result if steps else 0
            if steps is None or target <= 10 or target in numbers:
                continue  # trivial or unreachable: draw again
            i = len(problems)
            problems.append(
                Problem(
                    id=f"{self.name}-{difficulty}-{seed}-{i}",
                    prompt=f"{self.name}: {' '.join(map(str, numbers))} -> {target}\n",
                    answer=chain_expression(steps),
                    task=self.name,
                    difficulty=difficulty,
                )
            )
        return problems

    def parse(self, problem: Problem) -> tuple[list[int], int]:
        """(given numbers, target) from the prompt."""
        body = prompt_body(problem, self.name)
        left, sep, right = body.partition("->")
        numbers = [parse_int(t) for t in left.split()]
        target = parse_int(right)
        if not sep or not numbers or None in numbers or target is None:
            raise ValueError(f"malformed countdown prompt: {problem.prompt!r}")
        return numbers, target  # type: ignore[return-value]

    def derive(self, problem: Problem) -> tuple[list[Step], str]:
        expr = Expression.parse(problem.answer)
        return expr.steps(), problem.answer

    def corrupt(self, problem: Problem, rng: random.Random) -> tuple[list[Step], str, None]:
        """A valid chain over the given numbers that misses the target (a failed
        search branch): every step is right, only the answer is wrong. When every
        chain hits the target (e.g. ``50 50 -> 100``), a bare given number."""
        numbers, target = self.parse(problem)
        for _ in range(100):
            used = rng.sample(numbers, rng.randint(2, len(numbers)))
            steps = _random_chain(used, rng)
            if steps and steps[-1].result != target:
                return steps, chain_expression(steps), None
        misses = [x for x in numbers if x != target]
        if not misses:
            raise ValueError(f"no wrong attempt exists for {problem.prompt!r}")
        return [], str(rng.choice(misses)), None

    def evaluate(self, problem: Problem, answer: str) -> tuple[Counter[int], int] | None:
        """(numbers used, value) of an answer expression that is well formed and
        uses given numbers at most once, keeping intermediates non-negative; else None."""
        try:
            expr = Expression.parse(answer)
        except ValueError:
            return None
        numbers, _ = self.parse(problem)
        used = Counter(expr.leaves())
        value = expr.value()
        if value is None or used - Counter(numbers):
            return None
        return used, value

    def equivalent(self, problem: Problem, answer: str) -> bool:
        result = self.evaluate(problem, answer)
        return result is not None and result[1] == self.parse(problem)[1]

    def answer_key(self, problem: Problem, answer: str) -> str:
        result = self.evaluate(problem, answer)
        if result is None:
            return answer.strip()
        used, value = result
        return f"{','.join(map(str, sorted(used.elements())))}={value}"

    def _initial_state(self, problem: Problem) -> Counter[int]:
        return Counter(self.parse(problem)[0])

    def _check_step(
        self, problem: Problem, state: Counter[int], index: int, step: Step
    ) -> tuple[bool, Counter[int]]:
        operands = Counter([step.left, step.right])
        if operands - state:  # an operand that is not (or no longer) available
            return False, state
        return True, state - operands + Counter([step.result])


def _random_chain(numbers: list[int], rng: random.Random) -> list[Step] | None:
    """Combine ``numbers`` left to right with random legal operations (values in 0..999)."""
    value, steps = numbers[0], []
    for x in numbers[1:]:
        ops = [op for op in "+-*" if _legal(value, op, x)]
        if not ops:
            return None
        op = rng.choice(ops)
        steps.append(Step(value, op, x, apply_op(value, op, x)))
        value = steps[-1].result
    return steps


def _legal(a: int, op: str, b: int) -> bool:
    if op == "-":
        return a > b  # a zero intermediate is pointless
    if op == "*":
        return a > 1 and b > 1 and a * b <= MAX_VALUE
    return a + b <= MAX_VALUE


def chain_expression(steps: list[Step]) -> str:
    """``50+25=75, 75*7=525`` -> ``"(50+25)*7"`` (parentheses only where needed)."""
    expr, additive = str(steps[0].left), False
    for s in steps:
        if s.op == "*" and additive:
            expr = f"({expr})"
        expr = f"{expr}{s.op}{s.right}"
        additive = s.op in "+-"
    return expr


@dataclass(frozen=True)
class Expression:
    """A parsed arithmetic expression: a number (``op`` empty) or ``left op right``."""

    op: str
    number: int = 0
    left: Expression | None = None
    right: Expression | None = None

    @classmethod
    def parse(cls, text: str) -> Expression:
        """Recursive descent over integers, + - * and parentheses (never eval)."""
        parser = _Parser(text.replace(" ", ""))
        expr = parser.sum()
        if parser.pos != len(parser.text):
            raise ValueError(f"unexpected {parser.text[parser.pos:]!r} in {text!r}")
        return expr

    def leaves(self) -> list[int]:
        if not self.op:
            return [self.number]
        return self.left.leaves() + self.right.leaves()  # type: ignore[union-attr]

    def value(self) -> int | None:
        """The value, or None when an intermediate goes negative."""
        if not self.op:
            return self.number
        a, b = self.left.value(), self.right.value()  # type: ignore[union-attr]
        if a is None or b is None:
            return None
        v = apply_op(a, self.op, b)
        return v if v >= 0 else None

    def steps(self) -> list[Step]:
        """The binary operations in evaluation order, one solution step each."""
        if not self.op:
            return []
        left, right, value = self.left.value(), self.right.value(), self.value()  # type: ignore[union-attr]
        if left is None or right is None or value is None:
            raise ValueError("an expression with a negative intermediate has no valid steps")
        own = Step(left, self.op, right, value)
        return self.left.steps() + self.right.steps() + [own]  # type: ignore[union-attr]


_DIGITS = frozenset("0123456789")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def sum(self) -> Expression:
        expr = self.product()
        while self.peek() in ("+", "-"):
            op = self.peek()
            self.pos += 1
            expr = Expression(op, left=expr, right=self.product())
        return expr

    def product(self) -> Expression:
        expr = self.atom()
        while self.peek() == "*":
            self.pos += 1
            expr = Expression("*", left=expr, right=self.atom())
        return expr

    def atom(self) -> Expression:
        if self.peek() == "(":
            self.pos += 1
            expr = self.sum()
            if self.peek() != ")":
                raise ValueError(f"missing ')' in {self.text!r}")
            self.pos += 1
            return expr
        start = self.pos
        while self.peek() in _DIGITS:
            self.pos += 1
        number = parse_int(self.text[start : self.pos])
        if number is None:
            raise ValueError(f"expected a number at position {start} of {self.text!r}")
        return Expression("", number=number)
