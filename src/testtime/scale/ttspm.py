"""TTSPM saturation analysis ("Scaling over Scaling", spec §7).

Parallel sampling modelled as F(N) = 1 − (1 − p)^N (coverage: some sample is
right). Its marginal gain ΔF(N) = p(1 − p)^N falls below ε at
N* = ⌈ln(ε / p) / ln(1 − p)⌉. Estimate p from small-N runs, predict N*, and
compare with the knee observed on the measured curve.

Problems are not alike: one p fitted to a set of problems of different
difficulty over-predicts coverage at large N (the hard ones never come). The
per-problem model — a mixture F(N) = mean_i 1 − (1 − p_i)^N with p_i each
problem's own pass@1 — is the default wherever per-problem estimates exist
(:func:`mixture_coverage`, :func:`mixture_saturation_point`); the single-p fit
stays for curves without them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


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


def mixture_coverage(pass1: Sequence[float], n: int) -> float:
    """Predicted coverage at N = n of problems with pass@1 ``pass1``: mean of 1 − (1 − p_i)^n."""
    if not pass1:
        raise ValueError("no per-problem pass@1 to predict coverage from")
    return sum(1.0 - (1.0 - p) ** n for p in pass1) / len(pass1)


def mixture_saturation_point(pass1: Sequence[float], epsilon: float, max_n: int = 1 << 20) -> int | None:
    """Smallest N >= 1 whose mean marginal gain mean_i p_i (1 − p_i)^N is below ε (None when
    no problem is ever solved; the gain falls with N, so bisection finds it)."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    if not pass1 or max(pass1) <= 0.0:
        return None

    def gain(n: int) -> float:
        return sum(p * (1.0 - p) ** n for p in pass1) / len(pass1)

    lo, hi = 1, max_n
    if gain(lo) < epsilon:
        return 1
    while lo < hi:
        mid = (lo + hi) // 2
        if gain(mid) < epsilon:
            hi = mid
        else:
            lo = mid + 1
    return lo

