"""The first autocorrelation inequality (AlphaEvolve B.1; ThetaEvolve's FACI): for a
nonnegative f supported on [-1/4, 1/4], ``max_t (f*f)(t) >= C1 (∫f)^2``; a step
function with n equal steps of heights h gives the upper bound
``C1 <= max(f*f) / (∫f)^2 = 2 n max(h ⊛ h) / (Σh)^2`` (the autoconvolution of a step
function is piecewise linear with its knots on the step grid, so the discrete full
convolution's maximum is exact). Lower is better; best known 1.503133 (ThetaEvolve),
1.503164 (AlphaEvolve); the constant function gives 2.

Deviation: heights must be >= 0 exactly (the reference tolerates -1e-10), and at most
``max_steps`` of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from testtime.programs.problems.base import Invalid, Problem

BASELINE = '''# Step heights on [-1/4, 1/4]; the bound is 2 n max(h * h) / (sum h)^2.
HEIGHTS = [
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
]


def run():
    return [max(h, 0.0) for h in HEIGHTS]
'''


class FirstAutocorrelation(Problem):
    def __init__(self, max_steps: int = 4000) -> None:
        super().__init__(
            name="autocorrelation",
            description=(
                "Find a nonnegative step function f on [-1/4, 1/4] (n equal steps) minimising "
                "max_t (f*f)(t) / (integral of f)^2, an upper bound on the first autocorrelation "
                "constant C1. Define run() returning the list of n step heights (all >= 0, "
                f"1 <= n <= {max_steps}). The score is 2 n max(convolve(h, h)) / sum(h)^2 "
                "(lower is better; the constant function gives 2, best known about 1.5031)."
            ),
            entry="run", maximize=False, best_known=1.503133, score_range=(1.5, 2.0),
        )
        object.__setattr__(self, "max_steps", max_steps)

    @property
    def baseline(self) -> str:
        return BASELINE

    def check(self, value: Any) -> tuple[float, dict[str, Any]]:
        if isinstance(value, dict):
            value = value.get("heights")
        try:
            h = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as err:
            raise Invalid(f"expected a list of step heights ({err})") from None
        if h.ndim != 1 or not 1 <= h.size <= self.max_steps:
            raise Invalid(f"expected 1 to {self.max_steps} heights, got shape {h.shape}")
        if not np.all(np.isfinite(h)):
            raise Invalid("heights must be finite")
        if np.any(h < 0):
            raise Invalid("heights must be >= 0")
        total = float(h.sum())
        if total <= 0:
            raise Invalid("the heights sum to zero")
        h = h / h.max()  # scale-free; keeps the convolution's magnitude tame
        bound = float(2 * h.size * np.convolve(h, h).max() / h.sum() ** 2)
        return bound, {"n_steps": int(h.size), "c1_upper_bound": bound}
