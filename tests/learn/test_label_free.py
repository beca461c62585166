"""Label-free means label-free: every registered learning method, at its defaults (tiny
sizes), runs on a task whose test problems' gold labels raise outside grading."""

from __future__ import annotations

import pytest

from testtime.learn import METHODS, LearnRequest
from testtime.tasks import get_task
from testtime.tasks.labels import LabelAccess, SealedTask

GRPO = {"steps": 1, "prompts_per_step": 2, "n_votes": 2, "n_samples": 2, "max_tokens": 16,
        "eval_samples": 1, "checkpoint_every": 1, "fork_points": 1, "branches": 1}
TINY = {
    "ttrl": GRPO, "ettrl": GRPO, "spine": GRPO,
    "dco": {"steps": 1, "batch_size": 2, "train_problems": 2, "eval_samples": 1, "max_tokens": 16},
    "latentseek": {"max_iters": 1, "max_tokens": 16},
    "tt-si": {"samples": 2, "similar": 2, "lora_steps": 1, "batch_size": 2, "max_tokens": 16, "tau": 1.0},
    "dynamic-cheatsheet": {"max_tokens": 16},
    "rerouting": {"n": 2, "max_tokens": 16, "every": 4, "steps": 1},
    "state-tuning": {"steps": 1, "batch_size": 2, "train_problems": 2, "max_tokens": 16},
    **dict.fromkeys(("timehc-rl", "system2-rl", "system1-rl"), {
        "steps": 1, "prompts_per_step": 2, "n_samples": 2, "max_tokens": 16, "eval_samples": 1,
        "checkpoint_every": 1, "train_problems": 2}),
}
MOE_ONLY = {"rerouting"}  # refuse the dense tiny model; run sealed in tests/learn/test_rerouting.py
RWKV_ONLY = {"state-tuning"}  # refuses the GPT-2 tiny model; runs sealed in tests/learn/test_state_tuning.py
TIMELINE_ONLY = {"timehc-rl"}  # its temporal reward needs timelines; runs sealed in tests/learn/test_timehc.py


def sealed_request(method, model_dir, out, **options):
    task = SealedTask(get_task("arith"))
    return LearnRequest(method, task, "2", task.generate(2, 2, 0), out, model_dir,
                        options={**TINY[method], **options}, show_progress=False)


def test_every_method_is_listed_here():
    assert set(TINY) == set(METHODS.names())


@pytest.mark.parametrize("method", sorted(set(TINY) - MOE_ONLY - RWKV_ONLY - TIMELINE_ONLY))
def test_method_runs_label_free_at_its_defaults(method, tiny_dir, tmp_path):
    metrics = METHODS.create(method, sealed_request(method, tiny_dir, tmp_path / method))
    assert metrics["labels"] == "none"
    assert "after" in metrics  # graded at the end, inside grading()


@pytest.mark.parametrize("method, options", [
    ("latentseek", {"reward": "answer", "threshold": 1.0}),
    ("latentseek", {"reward": "verifier", "verifier": "oracle", "threshold": 1.0}),
    ("dynamic-cheatsheet", {"admit": "oracle"}),
    ("tt-si", {"level": "gold"}),
])
def test_the_labelled_upper_bounds_are_caught(method, options, answering_dir, tmp_path):
    """The guard can fail: the oracle options read labels (the answering model writes
    answer lines, so a verifier reward is computed)."""
    with pytest.raises(LabelAccess):
        METHODS.create(method, sealed_request(method, answering_dir, tmp_path / "x", **options))


def test_a_label_free_request_seals_its_problems(tiny_dir, tmp_path):
    task = get_task("arith")
    request = LearnRequest("latentseek", task, "2", task.generate(2, 2, 3), tmp_path / "r", tiny_dir,
                           options={**TINY["latentseek"], "reward": "answer", "threshold": 1.0},
                           show_progress=False, label_free=True)
    assert isinstance(request.task, SealedTask)
    with pytest.raises(LabelAccess):
        request.problems[0].answer  # noqa: B018
    with pytest.raises(LabelAccess):
        METHODS.create("latentseek", request)
