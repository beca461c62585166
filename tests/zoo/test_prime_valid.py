import random

from testtime.tasks import get_task
from testtime.tasks.base import WAIT_CUE
from testtime.zoo.behaviours import make_trace
from testtime.zoo.prime_valid import VALID, context, preference


def test_context_is_what_precedes_the_first_trained_segment_after_the_prompt():
    task = get_task("arith")
    problem = task.generate(1, 6, seed=1)[0]
    trace = lambda behaviour: make_trace(task, problem, behaviour, random.Random(0)).segments  # noqa: E731
    assert context(trace("plain"), problem.prompt) == problem.prompt
    waited = context(trace("wait"), problem.prompt)
    assert waited.startswith(problem.prompt) and waited.endswith(WAIT_CUE)
    shown = context(trace("incontext"), problem.prompt)  # the examples' solutions are trained, and shown
    assert shown.endswith(problem.prompt) and shown.count("answer:") >= 1


def test_selection_keeps_plain_solving_in_the_window_before_the_mean():
    assert VALID[0] == ("plain", 6)
    kept = {"plain@6": 0.6, "wait@6": 0.2}
    better_mean_but_broken = {"plain@6": 0.2, "wait@6": 0.9}
    assert preference(kept, (0.25, 0.75)) > preference(better_mean_but_broken, (0.25, 0.75))
    assert preference({"plain@6": 0.6, "wait@6": 0.4}, (0.25, 0.75)) > preference(kept, (0.25, 0.75))
