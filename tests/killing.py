"""Simulated kills for resume tests: a generator that dies during a chosen call."""

from __future__ import annotations

from typing import TypeVar

G = TypeVar("G")


class Killed(Exception):
    pass


def killed_after(generator: G, calls: int) -> G:
    """``generator``, whose ``generate`` raises :class:`Killed` on call ``calls + 1``
    (before answering), as a kill at that point would."""
    real, left = generator.generate, [calls]

    def generate(prompts, params, **kwargs):
        left[0] -= 1
        if left[0] < 0:
            raise Killed
        return real(prompts, params, **kwargs)

    generator.generate = generate
    return generator
