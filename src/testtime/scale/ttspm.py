"""TTSPM saturation analysis ("Scaling over Scaling", spec §7).

Parallel sampling modelled as F(N) = 1 − (1 − p)^N (coverage: some sample is
right). Its marginal gain ΔF(N) = p(1 − p)^N falls below ε at
N* = ⌈ln(ε / p) / ln(1 − p)⌉. Estimate p from small-N runs, predict N*, and
compare with the knee observed on the measured curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def fit_p(coverage: Mapping[int, float], max_n: int = 4) -> float:
    """p of F(N) = 1 − (1 − p)^N by least squares on log(1 − F) = N·log(1 − p),
    using the budgets N <= ``max_n``."""
    ns = [n for n in sorted(coverage) if n <= max_n]
    if not ns:
        raise ValueError(f"no budget N <= {max_n} to estimate p from")
    logs = [math.log(max(1.0 - coverage[n], 1e-12)) for n in ns]
    slope = sum(n * y for n, y in zip(ns, logs, strict=True)) / sum(n * n for n in ns)
    return 1.0 - math.exp(slope)


def saturation_point(p: float, epsilon: float) -> int | None:
    """Smallest N >= 1 with marginal gain p(1 − p)^N < ε (None when p = 0: never
    starts; 1 when p = 1 or p <= ε: already saturated)."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if p <= 0.0:
        return None
    if p >= 1.0 or p * (1.0 - p) < epsilon:
        return 1
    return max(1, math.ceil(math.log(epsilon / p) / math.log(1.0 - p)))


def observed_knee(curve: Mapping[int, float], epsilon: float) -> int | None:
    """First measured budget after which the gain per added sample,
    (F(N') − F(N)) / (N' − N) to the next budget N', is below ε."""
    ns = sorted(curve)
    for a, b in zip(ns, ns[1:], strict=False):
        if (curve[b] - curve[a]) / (b - a) < epsilon:
            return a
    return None
