"""Best-of-N (spec §1): the answer of the sample the verifier scores highest."""

from __future__ import annotations

from collections.abc import Sequence

from testtime.scale.base import STRATEGIES, Candidate
from testtime.scale.common import best_scored, candidate_score
from testtime.scale.pool import PoolStrategy, Selection
from testtime.tasks.base import Problem, Task


@STRATEGIES.register("best-of-n")
class BestOfN(PoolStrategy):
    name = "best-of-n"
    needs_verifier = True

    def select(self, pool: Sequence[Candidate], problem: Problem, task: Task) -> Selection:
        best = best_scored(pool, self.aggregation)
        if best is None:
            return None, {}
        return best.answer, {"score": candidate_score(best, self.aggregation)}
