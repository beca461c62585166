"""The evolution prompt (task, parent, inspirations) and reading a program back out of
a model's answer. AlphaEvolve/ThetaEvolve ask for diffs; here the model writes the
whole program (simpler for small models; deviation)."""

from __future__ import annotations

import re

from testtime.programs.database import Program
from testtime.programs.problems.base import Problem

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
PARENT_HEADER = "## Current program"


def _shown(program: Program) -> str:
    return f"{program.score:.10g}" if program.score is not None else "failed"


def build_prompt(problem: Problem, parent: Program, inspirations: list[Program]) -> str:
    parts = [
        f"# Task\n{problem.description}\n",
        "Improve the current program. Reply with the complete new program in one "
        f"```python block that defines {problem.entry}(). The program runs with no network "
        "and no file access, under time and memory limits.\n",
    ]
    for i, other in enumerate(inspirations, 1):
        parts.append(f"## Inspiration {i} (score {_shown(other)})\n```python\n{other.code.rstrip()}\n```\n")
    parts.append(f"{PARENT_HEADER} (score {_shown(parent)})\n```python\n{parent.code.rstrip()}\n```\n")
    parts.append("## New program\n")
    return "\n".join(parts)


def extract_code(text: str) -> str | None:
    """The last fenced Python block of ``text`` (None when there is none)."""
    blocks = FENCE.findall(text)
    return blocks[-1].strip() + "\n" if blocks else None


def parent_code(prompt: str) -> str | None:
    """The current program shown in an evolution prompt."""
    head, sep, tail = prompt.partition(PARENT_HEADER)
    return extract_code(tail.split("## New program")[0]) if sep else None
