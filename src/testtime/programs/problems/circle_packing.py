"""Circle packing in the unit square (AlphaEvolve B.12; ThetaEvolve's CP): place n = 26
disjoint circles inside [0, 1]^2 maximising the sum of their radii. Best known about
2.6359 (ThetaEvolve 2.63598308, AlphaEvolve 2.63586276).

The check is exact with zero tolerance: every coordinate and radius is a binary float,
i.e. a rational, and containment and non-overlap are decided in rational arithmetic
(``(xi - xj)^2 + (yi - yj)^2 >= (ri + rj)^2``), so no rounding can admit an overlap.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from testtime.programs.problems.base import Invalid, Problem

BASELINE = '''import numpy as np

# A 5 x 5 grid plus one circle in a gap; the radii are then grown greedily so
# that no circle leaves the square or overlaps an earlier one.
CENTERS = [
    (0.1, 0.1), (0.3, 0.1), (0.5, 0.1), (0.7, 0.1), (0.9, 0.1),
    (0.1, 0.3), (0.3, 0.3), (0.5, 0.3), (0.7, 0.3), (0.9, 0.3),
    (0.1, 0.5), (0.3, 0.5), (0.5, 0.5), (0.7, 0.5), (0.9, 0.5),
    (0.1, 0.7), (0.3, 0.7), (0.5, 0.7), (0.7, 0.7), (0.9, 0.7),
    (0.1, 0.9), (0.3, 0.9), (0.5, 0.9), (0.7, 0.9), (0.9, 0.9),
    (0.2, 0.2),
]


def greedy_radii(centers):
    """Largest radii in order: inside the square, clear of every earlier circle."""
    centers = np.clip(np.asarray(centers, dtype=float), 0.0, 1.0)
    radii = np.zeros(len(centers))
    for i, (x, y) in enumerate(centers):
        r = min(x, y, 1.0 - x, 1.0 - y)
        for j in range(i):
            d = float(np.hypot(x - centers[j, 0], y - centers[j, 1]))
            r = min(r, d - radii[j])
        radii[i] = max(0.0, r * (1.0 - 1e-12) - 1e-15)  # stay strictly feasible
    return centers, radii


def run():
    centers, radii = greedy_radii(CENTERS)
    return {"centers": centers.tolist(), "radii": radii.tolist()}
'''


class CirclePacking(Problem):
    def __init__(self, n: int = 26) -> None:
        super().__init__(
            name="circle-packing",
            description=(
                f"Pack {n} disjoint circles inside the unit square [0,1]x[0,1] so that the sum "
                "of their radii is as large as possible. Define run() returning "
                f'{{"centers": [[x, y], ...], "radii": [r, ...]}} with {n} of each. A circle must '
                "lie inside the square and no two may overlap (checked exactly, tolerance 0). "
                "The score is the sum of the radii (higher is better; best known about 2.635)."
            ),
            entry="run", maximize=True, best_known=2.635983, score_range=(2.0, 2.636),
        )
        object.__setattr__(self, "n", n)

    @property
    def baseline(self) -> str:
        return BASELINE

    def check(self, value: Any) -> tuple[float, dict[str, Any]]:
        centers, radii = _unpack(value, self.n)
        exact = [(Fraction(x), Fraction(y), Fraction(r)) for (x, y), r in zip(centers, radii, strict=True)]
        for i, (x, y, r) in enumerate(exact):
            if r < 0:
                raise Invalid(f"circle {i} has a negative radius {float(r)}")
            if x - r < 0 or y - r < 0 or x + r > 1 or y + r > 1:
                raise Invalid(f"circle {i} leaves the unit square")
        for i in range(self.n):
            xi, yi, ri = exact[i]
            for j in range(i + 1, self.n):
                xj, yj, rj = exact[j]
                if (xi - xj) ** 2 + (yi - yj) ** 2 < (ri + rj) ** 2:
                    raise Invalid(f"circles {i} and {j} overlap")
        total = float(sum(r for _, _, r in exact))
        return total, {"n": self.n, "sum_radii": total}


def _unpack(value: Any, n: int) -> tuple[list[tuple[float, float]], list[float]]:
    if isinstance(value, dict):
        if "centers" not in value or "radii" not in value:
            raise Invalid("expected a dict with 'centers' and 'radii'")
        centers, radii = value["centers"], value["radii"]
    elif isinstance(value, list) and len(value) == 2:
        centers, radii = value
    else:
        raise Invalid("expected {'centers': [[x, y], ...], 'radii': [...]}")
    try:
        pts = [(float(x), float(y)) for x, y in centers]
        rs = [float(r) for r in radii]
    except (TypeError, ValueError) as err:
        raise Invalid(f"centers must be pairs and radii numbers ({err})") from None
    if len(pts) != n or len(rs) != n:
        raise Invalid(f"expected {n} centers and {n} radii, got {len(pts)} and {len(rs)}")
    if not all(math.isfinite(v) for p in pts for v in p) or not all(math.isfinite(r) for r in rs):
        raise Invalid("coordinates and radii must be finite")
    return pts, rs
