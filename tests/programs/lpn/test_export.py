"""LPN export: safetensors weights that load back to the same network, a model card
with the run's numbers, a clear error where there are no weights."""

from __future__ import annotations

import json

import pytest
import torch

from testtime.programs.lpn.evaluate import EvalConfig, SearchRow
from testtime.programs.lpn.export import export, load_lpn
from testtime.programs.lpn.grids import sample_tasks
from testtime.programs.lpn.model import LPN, LPNConfig
from testtime.programs.lpn.train import TrainConfig


def test_exported_weights_load_back_to_the_same_predictions(tmp_path):
    torch.manual_seed(0)
    model = LPN(LPNConfig(hidden=32, latent=4))
    log = [{"step": 1, "loss": 34.0, "recon": 33.9, "kl": 0.1, "seconds": 90.0}]
    rows = [SearchRow("ood", "gradient", 5, correct=7, tasks=20, flops=1e6, log_likelihood=-3.0)]
    export(model, tmp_path / "w", TrainConfig(steps=1), log, rows, EvalConfig(tasks=20), threads=2)
    loaded = load_lpn(tmp_path / "w")
    task = sample_tasks(1, "train", stream="eval")[0]
    x, y = torch.tensor(task.inputs), torch.tensor(task.outputs)
    with torch.no_grad():
        z = model.encode(x, y)[0].mean(0)
        assert torch.equal(model.predict(x, z), loaded.predict(x, z))
    params = sum(p.numel() for p in model.parameters())
    assert (tmp_path / "w" / "model.safetensors").stat().st_size < 4 * params + 4096  # float32, small
    config = json.loads((tmp_path / "w" / "config.json").read_text())
    assert config["model"]["hidden"] == 32 and config["threads"] == 2
    card = (tmp_path / "w" / "README.md").read_text()
    assert f"{params:,} parameters" in card and "1.5 min on 2 thread(s)" in card
    assert "| out of distribution | gradient | 5 | 0.350 |" in card


def test_no_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="testtime learn lpn"):
        load_lpn(tmp_path)


def test_the_card_states_the_threads_training_ran_on_not_the_exporting_process():
    from testtime.programs.lpn.export import training_threads

    assert training_threads([{"threads": 2}, {"threads": 2}]) == 2
    assert training_threads([{"threads": 1}, {"threads": 2}]) == 2  # resumed on more threads
    assert training_threads([{"step": 1}]) is None  # an older log: the caller's value stands


def test_the_shipped_lpn_solves_training_distribution_tasks():
    from testtime.programs.lpn.evaluate import measure
    from testtime.programs.lpn.export import SHIPPED

    if not (SHIPPED / "model.safetensors").exists():
        pytest.skip("LPN weights are not shipped in this checkout")
    torch.set_num_threads(1)
    # An exact 5x5 guess in 4 colours by chance is 4**-25; the shipped card reports 0.635.
    row = measure(load_lpn(), "train", "none", 0, EvalConfig(tasks=40, eval_seed=7))
    assert row.correct / row.tasks > 0.3
