"""Built-in open problems for ``testtime evolve`` (registry by name)."""

from __future__ import annotations

from testtime.programs.problems.autocorrelation import FirstAutocorrelation
from testtime.programs.problems.base import Invalid, Problem
from testtime.programs.problems.circle_packing import CirclePacking
from testtime.programs.problems.countdown import CountdownClosest
from testtime.registry import Registry

PROBLEMS: Registry[Problem] = Registry("problem")
PROBLEMS.register("circle-packing")(CirclePacking)
PROBLEMS.register("autocorrelation")(FirstAutocorrelation)
PROBLEMS.register("countdown-closest")(CountdownClosest)

__all__ = ["PROBLEMS", "CirclePacking", "CountdownClosest", "FirstAutocorrelation", "Invalid",
           "Problem"]
