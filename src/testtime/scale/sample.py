"""One sample at the sampling temperature: the pass@1 baseline."""

from __future__ import annotations

from collections.abc import Sequence

from testtime.scale.base import STRATEGIES, Candidate
from testtime.scale.pool import PoolStrategy, Selection
from testtime.tasks.base import Problem, Task


@STRATEGIES.register("sample")
class Sample(PoolStrategy):
    name = "sample"
    budget_param = None  # always one sample

    def __init__(
        self,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int = 256,
        seed: int | None = 0,
    ) -> None:
        super().__init__(1, temperature, top_p, max_tokens, seed)

    def select(self, pool: Sequence[Candidate], problem: Problem, task: Task) -> Selection:
        # The harness evaluates many size-1 subsets of one pool: pass@1 with low variance.
        return pool[0].answer, {}
