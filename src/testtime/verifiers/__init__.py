"""testtime.verifiers: importing this package registers every built-in verifier."""

import importlib.util

from testtime.verifiers import oracle as _oracle  # noqa: F401
from testtime.verifiers.base import VERIFIERS, Scores, Verifier, aggregate, get_verifier

# Learned and LLM-judge verifiers live in modules other engineers add; register them when present.
for _module in ("prm", "judge"):
    if importlib.util.find_spec(f"testtime.verifiers.{_module}") is not None:
        importlib.import_module(f"testtime.verifiers.{_module}")

__all__ = ["VERIFIERS", "Scores", "Verifier", "aggregate", "get_verifier"]
