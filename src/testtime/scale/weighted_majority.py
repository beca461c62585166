"""Verifier-weighted majority vote (spec §1): argmax_a Σ_i 1[a_i ≡ a] · r_i, with r_i
the solution's step scores aggregated by last|min|prod|mean (Snell et al., 2024)."""

from __future__ import annotations

from collections.abc import Sequence

from testtime.scale.base import STRATEGIES, Candidate
from testtime.scale.common import candidate_score, vote
from testtime.scale.pool import PoolStrategy, Selection
from testtime.tasks.base import Problem, Task


@STRATEGIES.register("weighted-majority")
class WeightedMajority(PoolStrategy):
    name = "weighted-majority"
    needs_verifier = True

    def select(self, pool: Sequence[Candidate], problem: Problem, task: Task) -> Selection:
        weights = [candidate_score(c, self.aggregation) for c in pool]
        answer, tally = vote(pool, problem, task, weights)
        return answer, {"weighted_votes": tally}
