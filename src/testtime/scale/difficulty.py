"""Difficulty estimation and binning for compute-optimal allocation (Snell et al.
2024, §3.2; Liu et al. 2025).

Label-free (``verifier``, the default): a problem's difficulty is the mean
final-step verifier score of a few probe samples, binned by the quantiles of
the calibration split's scores (5 bins). ``oracle`` uses the probes' pass@1,
which reads the reference answer: an upper bound, reported as
``labels: gold-difficulty``. Liu et al.'s absolute bins (pass@1 <= 10% hard,
10-50% medium, > 50% easy) are an option of the binning.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from testtime.scale.base import Candidate
from testtime.scale.common import check_positive, mark_correct
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import aggregate

ESTIMATES = ("verifier", "oracle")
BINNINGS = ("quantile", "absolute")
ABSOLUTE_EDGES = [0.1, 0.5]  # pass@1 <= 10%: hard, (10%, 50%]: medium, > 50%: easy


def check_estimate(estimate: str) -> str:
    if estimate not in ESTIMATES:
        raise ValueError(f"unknown difficulty estimate {estimate!r}; valid: {', '.join(ESTIMATES)}")
    return estimate


def check_binning(binning: str) -> str:
    if binning not in BINNINGS:
        raise ValueError(f"unknown binning {binning!r}; valid: {', '.join(BINNINGS)}")
    return binning


def quantile_edges(values: Sequence[float], bins: int = 5) -> list[float]:
    """The bins-1 inner quantiles of ``values`` (bin i holds the i-th fifth by score)."""
    check_positive("bins", bins)
    if not values:
        raise ValueError("no difficulty estimates to bin")
    return [float(q) for q in np.quantile(np.asarray(values, float), [i / bins for i in range(1, bins)])]


def assign_bin(value: float, edges: Sequence[float]) -> int:
    """Bin index of ``value`` (0 = lowest score = hardest); a value on an edge
    goes to the lower bin (so pass@1 = 10% is "hard", 50% "medium")."""
    return bisect.bisect_left(list(edges), value)


def difficulty_estimate(probes: Sequence[Candidate], problem: Problem, task: Task, estimate: str) -> float:
    """Label-free: mean final-step verifier score of the probes; oracle: their pass@1."""
    if estimate == "oracle":
        return float(np.mean([mark_correct(c.answer, problem, task) for c in probes]))
    return float(np.mean([aggregate(c.step_scores or [], "last") for c in probes]))
