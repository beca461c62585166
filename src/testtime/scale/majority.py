"""Self-consistency (Wang et al.): the most frequent answer among n samples (spec §1)."""

from __future__ import annotations

from collections.abc import Sequence

from testtime.scale.base import STRATEGIES, Candidate
from testtime.scale.common import vote
from testtime.scale.pool import PoolStrategy, Selection
from testtime.tasks.base import Problem, Task


@STRATEGIES.register("majority")
class Majority(PoolStrategy):
    name = "majority"

    def select(self, pool: Sequence[Candidate], problem: Problem, task: Task) -> Selection:
        answer, tally = vote(pool, problem, task)
        return answer, {"votes": tally}
