"""Greedy decoding (temperature 0): the deterministic single-sample baseline."""

from __future__ import annotations

from testtime.scale.base import STRATEGIES
from testtime.scale.sample import Sample


@STRATEGIES.register("greedy")
class Greedy(Sample):
    name = "greedy"

    def __init__(self, max_tokens: int = 256) -> None:
        super().__init__(temperature=0.0, max_tokens=max_tokens, seed=None)
