"""Task families: generated arithmetic (``arith``, ``countdown``, ``mul``), generated
false-belief and temporal stories (``social``) and the
user's own problems (``jsonl``). ``get_task("arith")``, ``get_task("jsonl", path=...)``
or simply ``get_task("my_problems.jsonl")``."""

from __future__ import annotations

from testtime.registry import Registry
from testtime.tasks.arith import ArithTask
from testtime.tasks.base import Problem, Task
from testtime.tasks.countdown import CountdownTask
from testtime.tasks.jsonl import JsonlTask
from testtime.tasks.mul import MulTask
from testtime.tasks.social import SocialTask
from testtime.tasks.synthetic import SyntheticTask

TASKS: Registry[Task] = Registry("task")
TASKS.register("arith")(ArithTask)
TASKS.register("countdown")(CountdownTask)
TASKS.register("mul")(MulTask)
TASKS.register("jsonl")(JsonlTask)
TASKS.register("social")(SocialTask)

# The generated families TinyReasoner is trained on.
SYNTHETIC_TASKS = ("arith", "countdown", "mul")


def get_task(name: str, **kwargs) -> Task:
    """A task by registered name; a path ending in ``.jsonl`` loads that file."""
    if name not in TASKS and name.endswith(".jsonl"):
        return JsonlTask(name, **kwargs)
    return TASKS.create(name, **kwargs)


__all__ = ["TASKS", "SYNTHETIC_TASKS", "Problem", "SyntheticTask", "Task", "get_task"]
