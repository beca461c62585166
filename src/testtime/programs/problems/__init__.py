"""Built-in open problems for ``testtime evolve`` (registry by name)."""

from __future__ import annotations

from testtime.programs.problems.autocorrelation import FirstAutocorrelation
from testtime.programs.problems.base import Invalid, Problem
from testtime.programs.problems.circle_packing import CirclePacking
from testtime.registry import Registry

PROBLEMS: Registry[Problem] = Registry("problem")
PROBLEMS.register("circle-packing")(CirclePacking)
PROBLEMS.register("autocorrelation")(FirstAutocorrelation)

__all__ = ["PROBLEMS", "CirclePacking", "FirstAutocorrelation", "Invalid", "Problem"]
