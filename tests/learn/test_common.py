"""Splits, majority pseudo-labels, up-front checks (answers, generator, memory)."""

from __future__ import annotations

import json

import pytest

from testtime.learn.common import (
    check_memory,
    majority,
    make_problems,
    parse_split,
    require_answers,
    require_generator,
)
from testtime.tasks import get_task


def test_parse_split():
    assert parse_split("8-12") == [8, 9, 10, 11, 12]
    assert parse_split("4,6, 6") == [4, 6]
    for bad in ("", "a-b", "8-"):
        with pytest.raises(ValueError, match="split"):
            parse_split(bad)


def test_make_problems_spreads_over_levels_and_is_deterministic():
    task = get_task("arith")
    probs = make_problems(task, [2, 3, 4], 7, 0)
    assert [p.difficulty for p in probs].count(2) == 3 and len(probs) == 7
    assert [p.id for p in probs] == [p.id for p in make_problems(task, [2, 3, 4], 7, 0)]


def test_majority_pseudo_label_and_ratio():
    assert majority(["5", "7", "5", None]) == ("5", 0.5)  # abstentions count against the ratio
    assert majority(["7", "5", "5", "7"])[0] == "7"  # ties: first seen
    assert majority([None, None]) == (None, 0.0)


def test_tasks_without_answers_or_generator_are_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "q\n", "answer": ""}) + "\n")
    task = get_task(str(path))
    with pytest.raises(ValueError, match="needs verifiable answers"):
        require_answers(task, task.problems, "ttrl")
    with pytest.raises(ValueError, match="no generator"):
        require_generator(task, "dco")
    require_generator(get_task("arith"), "dco")


def test_memory_estimate_refuses_a_batch_that_cannot_fit():
    need = check_memory(2_000_000, 4, 192, 50, 8, 300, limit_bytes=2**40)
    assert 2**20 < need < 2**31
    with pytest.raises(ValueError, match="GiB"):
        check_memory(2_000_000, 4, 192, 50, 100_000, 512, limit_bytes=2**34)
