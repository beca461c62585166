"""The supervised warm start: completion-only cross-entropy lowers held-out NLL; resumable."""

from __future__ import annotations

import random

import pytest

from testtime.learn.sft import SFTConfig, teach


def pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"q: where is item {rng.randint(0, 99)}?\n", f"mode: intuition\nanswer: box{rng.randint(0, 3)}\n")
            for _ in range(n)]


def test_teaching_lowers_held_out_nll_and_resumes(tiny_dir, tmp_path):
    cfg = SFTConfig(steps=6, batch_size=8, lr=1e-2, eval_pairs=8, checkpoint_every=3)
    metrics = teach(tiny_dir, pairs(40), tmp_path / "sft", cfg, show_progress=False)
    assert metrics["after"]["nll"] < metrics["before"]["nll"] - 0.5
    assert (tmp_path / "sft" / "model" / "config.json").exists()
    again = teach(tiny_dir, pairs(40), tmp_path / "sft", cfg, show_progress=False)
    assert again["steps_done"] == 6 and again["before"] == metrics["before"]
    with pytest.raises(ValueError, match="another run"):
        teach(tiny_dir, pairs(40, seed=1), tmp_path / "sft", cfg, show_progress=False)


def test_too_few_pairs_or_a_completion_too_long_is_a_clear_error(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="more than eval_pairs"):
        teach(tiny_dir, pairs(4), tmp_path / "a", SFTConfig(eval_pairs=4), show_progress=False)
    with pytest.raises(ValueError, match="does not fit"):
        teach(tiny_dir, [("q\n", "x" * 400)] * 70, tmp_path / "b", SFTConfig(), show_progress=False)
