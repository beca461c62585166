"""A step-tree script for the ScriptedGenerator: what the model writes after each partial solution."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def tree_script(prompt: str, table: Mapping[str, Sequence[str]]) -> Callable[[str], Sequence[str]]:
    """``table[partial]`` lists the continuations (the rest of a solution) the model
    samples after ``prompt + partial``; text before ``prompt`` (retrieved context) is ignored."""

    def script(full: str) -> Sequence[str]:
        return table[full.split(prompt, 1)[1]]

    return script
