"""LPN: the grid benchmark's split and exact check, test-time search modes, training
with search in the loop (loss falls, resume equals an uninterrupted run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testtime.programs.lpn.grids import NAMES, held_out, programs, run, sample_tasks
from testtime.programs.lpn.model import LPN, LPNConfig
from testtime.programs.lpn.search import search, search_batch
from testtime.programs.lpn.train import TrainConfig, train

torch.set_num_threads(1)
SMALL = LPNConfig(hidden=64, latent=8)


def test_held_out_compositions_use_only_seen_primitives():
    ood = [p for p in programs() if held_out(p)]
    seen = {name for p in programs() if not held_out(p) for name in p}
    assert ood and set(NAMES) == seen and all(len(p) == 2 for p in ood)
    assert all(held_out(t.program) for t in sample_tasks(20, "ood"))
    assert not any(held_out(t.program) for t in sample_tasks(20, "train"))
    with pytest.raises(ValueError, match="split"):
        sample_tasks(1, "test")


def test_tasks_are_exact_and_seeded():
    task = sample_tasks(1, "train", seed=4)[0]
    again = sample_tasks(1, "train", seed=4)[0]
    assert task.program == again.program and np.array_equal(task.inputs, again.inputs)
    assert task.correct(run(task.program, task.inputs[-1], 4))
    assert not task.correct((task.outputs[-1] + 1) % 4)
    grid = np.arange(25).reshape(5, 5) % 4
    assert np.array_equal(run(("rot90",) * 4, grid, 4), grid)
    assert np.array_equal(run(("recolor",), grid, 4), (grid + 1) % 4)


def test_search_modes_spend_compute_to_explain_the_examples():
    torch.manual_seed(0)
    model = LPN(SMALL)
    task = sample_tasks(1, "train", seed=2)[0]
    x, y = torch.tensor(task.inputs[:-1]), torch.tensor(task.outputs[:-1])
    none = search(model, x, y, "none")
    assert none.flops == 0
    random = search(model, x, y, "random", steps=8)
    gradient = search(model, x, y, "gradient", steps=8)
    both = search(model, x, y, "both", steps=8)
    assert random.log_likelihood >= none.log_likelihood  # the mean is among the candidates
    assert gradient.log_likelihood > none.log_likelihood
    assert both.log_likelihood >= search(model, x, y, "random", steps=4).log_likelihood
    assert 0 < random.flops < gradient.flops
    with pytest.raises(ValueError, match="mode"):
        search(model, x, y, "beam")


def test_a_batch_of_tasks_is_searched_as_each_task_alone():
    torch.manual_seed(0)
    model = LPN(SMALL)
    tasks = sample_tasks(5, "ood", seed=3)
    x = torch.tensor(np.stack([t.inputs[:-1] for t in tasks]))
    y = torch.tensor(np.stack([t.outputs[:-1] for t in tasks]))
    together = search_batch(model, x, y, "gradient", steps=6)
    for i in range(5):
        alone = search(model, x[i], y[i], "gradient", steps=6)
        assert torch.allclose(together.z[i], alone.z, atol=1e-5)
        assert float(together.log_likelihood[i]) == pytest.approx(float(alone.log_likelihood), abs=1e-3)
    assert together.flops == alone.flops  # per task


class Killed(Exception):
    pass


def test_training_lowers_the_loss_and_a_run_killed_anywhere_resumes_exactly(tmp_path):
    cfg = TrainConfig(steps=40, batch=8, checkpoint_every=20, lr=3e-3)
    torch.manual_seed(0)
    model, log = train(tmp_path / "whole", cfg, SMALL)
    first, last = np.mean([r["recon"] for r in log[:5]]), np.mean([r["recon"] for r in log[-5:]])
    assert last < first

    def kill_at_27(row: dict) -> None:
        if row["step"] == 27:  # between checkpoints: steps 21-27 are lost
            raise Killed

    torch.manual_seed(0)
    with pytest.raises(Killed):
        train(tmp_path / "split", cfg, SMALL, on_step=kill_at_27)
    with pytest.raises(ValueError, match="other settings"):
        train(tmp_path / "split", TrainConfig(**{**cfg.__dict__, "lr": 1e-3}), SMALL)
    seen = []
    resumed, log2 = train(tmp_path / "split", cfg, SMALL, on_step=seen.append)
    assert [r["step"] for r in seen] == list(range(21, 41))  # from the last checkpoint on
    assert [r["loss"] for r in log2] == pytest.approx([r["loss"] for r in log])
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b)


def test_evaluation_tasks_never_come_from_the_training_stream():
    trained = {t.inputs.tobytes() for step in range(50) for t in sample_tasks(8, "train", seed=step)}
    fresh = sample_tasks(200, "train", seed=1, stream="eval")
    assert not any(t.inputs.tobytes() in trained for t in fresh)
    assert sample_tasks(1, "train", seed=1)[0].inputs.tobytes() in trained  # the check can fail
    with pytest.raises(ValueError, match="stream"):
        sample_tasks(1, "train", stream="test")


def test_a_diverging_run_stops_before_anything_saved_goes_nan(tmp_path):
    cfg = TrainConfig(steps=5, batch=2, checkpoint_every=1, inner_lr=float("inf"))  # z -> inf
    with pytest.raises(ValueError, match="diverged at step 1"):
        train(tmp_path, cfg, SMALL)
    assert not (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="clip"):
        TrainConfig(clip=0)
