"""Closest countdown: an optimisation problem in the embedded model's own language, so
the evolve loop and its test-time RL step can be measured with the shipped
TinyReasoner. The instance is a countdown prompt (``countdown: 2 4 8 25 -> 209``)
whose target no expression reaches; a candidate is the model's answer (steps, then
``answer: EXPR``), checked exactly by the countdown task's evaluator (given numbers
at most once, + - *, non-negative intermediates), and scored ``-|value - target|``.
The optimum is known exactly by enumeration (``best_known``), unlike the open
problems. Deviation from ThetaEvolve: the tiny model cannot read programs, so the
prompt is the bare instance (no parent or inspirations).
"""

from __future__ import annotations

from functools import cache
from itertools import combinations
from typing import Any

from testtime.programs.problems.base import Invalid, Problem
from testtime.tasks.base import Problem as TaskProblem
from testtime.tasks.countdown import MAX_VALUE, CountdownTask


@cache
def reachable(numbers: tuple[int, ...]) -> frozenset[int]:
    """Every value an expression over a sub-multiset of ``numbers`` reaches (+, -, *,
    intermediates in 0..MAX_VALUE as the task's chains keep them)."""
    values = set(numbers)
    for i, j in combinations(range(len(numbers)), 2):
        a, b = max(numbers[i], numbers[j]), min(numbers[i], numbers[j])
        rest = tuple(x for k, x in enumerate(numbers) if k not in (i, j))
        for c in (a + b, a - b, a * b):
            if 0 <= c <= MAX_VALUE:
                values |= reachable(tuple(sorted((*rest, c))))
    return frozenset(values)


def unreachable_near(numbers: tuple[int, ...], target: int) -> int:
    """The value nearest ``target`` (ties: the larger) that no expression reaches."""
    have = reachable(tuple(sorted(numbers)))
    for d in range(MAX_VALUE + 1):
        for t in (target + d, target - d):
            if 0 < t <= MAX_VALUE and t not in have:
                return t
    raise ValueError(f"every value up to {MAX_VALUE} is reachable from {numbers}")


class CountdownClosest(Problem):
    language = "countdown"  # candidates are answers in the task's language, not programs

    def __init__(self, difficulty: int = 4, seed: int = 1) -> None:
        task = CountdownTask()
        source = task.generate(1, difficulty, seed)[0]
        numbers, aim = task.parse(source)
        target = unreachable_near(tuple(numbers), aim)
        have = reachable(tuple(sorted(numbers)))
        optimum = -min(abs(v - target) for v in have)
        prompt = f"countdown: {' '.join(map(str, numbers))} -> {target}\n"
        super().__init__(
            name="countdown-closest",
            description=f"Reach {target} (unreachable) as closely as possible: {prompt.strip()}",
            entry="", maximize=True, best_known=float(optimum), score_range=(-50.0, 0.0),
        )
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "instance", TaskProblem(
            id=f"countdown-closest-{difficulty}-{seed}", prompt=prompt, answer="",
            task=task.name, difficulty=difficulty))
        object.__setattr__(self, "numbers", tuple(numbers))
        object.__setattr__(self, "target", target)

    @property
    def baseline(self) -> str:
        return f"answer: {max(self.numbers)}"  # the largest number alone

    def prompt_for(self, parent: Any, inspirations: list[Any]) -> str:
        return self.instance.prompt

    def read(self, text: str) -> str | None:
        """The answer expression of a sample (None: the sample gave no answer line)."""
        answer = self.task.extract_answer(text)
        return f"answer: {answer}" if answer else None

    def check(self, value: Any) -> tuple[float, dict[str, Any]]:
        answer = self.task.extract_answer(str(value))
        result = self.task.evaluate(self.instance, answer) if answer else None
        if result is None:
            raise Invalid("not an expression over the given numbers (each at most once, + - *, "
                          "non-negative intermediates)")
        reached = result[1]
        return float(-abs(reached - self.target)), {"reached": reached, "target": self.target}
