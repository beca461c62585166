import random

import pytest

from testtime.backends.local import LocalGenerator
from testtime.tasks import get_task
from testtime.zoo import reasoner_path
from testtime.zoo.prm_data import build_rows, labelled, pairs, pairwise_accuracy

ARITH = get_task("arith")


def test_on_track_labels_forgive_a_redone_step():
    p = ARITH.generate(1, 3, seed=0)[0]  # 77+9=86, 86-8=78, 78-76=2
    row = labelled(ARITH, p, "77+9=86\n86-9=77\ncheck 86-8=78 wrong\n78-76=2\nanswer: 2\n", "policy")
    assert row["steps"] == [1.0, 0.0, 1.0, 1.0] and row["correct"]
    carried = labelled(ARITH, p, "77+9=86\n86-9=77\n77-76=1\nanswer: 1\n", "near-miss")
    assert carried["steps"] == [1.0, 0.0, 0.0] and not carried["correct"]


def test_pairs_stay_within_a_problem_and_pairwise_accuracy():
    rows = [{"problem": "a", "correct": True}, {"problem": "a", "correct": False},
            {"problem": "b", "correct": True}, {"problem": "c", "correct": False}]
    got = pairs(rows, random.Random(0), per_problem=3)
    assert got == [(0, 1)] * 3
    assert pairwise_accuracy(rows, [0.9, 0.2, 0.1, 0.95]) == 1.0  # b and c have no pair
    assert pairwise_accuracy(rows, [0.2, 0.2, 0.1, 0.95]) == 0.5


def test_build_rows_policy_near_miss_and_monte_carlo():
    if not (reasoner_path() / "config.json").exists():
        pytest.skip("TinyReasoner weights are not shipped in this checkout")
    gen = LocalGenerator(reasoner_path())
    rows = build_rows(gen, {"arith": (1.0, (2,))}, problems_per_level=2, samples=2, seed_base=7, seed=0,
                      near_misses=1, mc_share=1.0, rollouts=2, max_tokens=48)
    policy = [r for r in rows if r["source"] == "policy"]
    near = [r for r in rows if r["source"] == "near-miss"]
    assert len(policy) == 4 and len(near) == 2 and sum(r["source"] == "reference" for r in rows) == 2
    assert all(not r["correct"] and 0.0 in r["steps"] for r in near)
    for r in policy:
        assert len(r["mc"]) == len(r["steps"]) and all(0.0 <= x <= 1.0 for x in r["steps"])
