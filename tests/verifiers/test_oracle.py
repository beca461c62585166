import pytest

from testtime.tasks import get_task
from testtime.verifiers import VERIFIERS, get_verifier
from testtime.verifiers.base import aggregate


def test_oracle_step_scores_are_prefix_validity():
    task = get_task("arith")
    problem = task.generate(1, 4, seed=0)[0]
    right = task.solve(problem)
    lines = right.splitlines()
    # Break step 2: later steps that propagate the error are invalid too, and a later
    # step that happens to be valid cannot restore a broken prefix.
    a, rest = lines[1].split("=")
    broken = "\n".join([lines[0], f"{a}={int(rest) + 1}", *lines[2:]]) + "\n"
    v = get_verifier("oracle", task=task)
    scores = v.score(problem, [right, broken, ""])
    assert scores.steps[0] == [1.0] * 4
    assert scores.steps[1] == [1.0, 0.0, 0.0, 0.0]
    assert scores.steps[2] == []
    assert scores.tokens == 0 and v.num_parameters == 0
    assert aggregate(scores.steps[1], "last") == 0.0
    assert aggregate(scores.steps[1], "mean") == 0.25


def test_oracle_registered_and_refuses_tasks_without_checker(tmp_path):
    assert "oracle" in VERIFIERS
    path = tmp_path / "mine.jsonl"
    path.write_text('{"id": "a", "prompt": "q\\n", "answer": "1"}\n')
    with pytest.raises(ValueError, match="step checker"):
        get_verifier("oracle", task=get_task(str(path)))
    with pytest.raises(ValueError, match="needs the task"):
        get_verifier("oracle")
