"""`testtime zoo train lact-mqar`: the recipe trains, resumes, refuses ambiguous starts."""

from __future__ import annotations

import pytest
import torch

from testtime.layers.lm import TinyLM, num_parameters
from testtime.layers.weights import load_model
from testtime.zoo import TRAINERS
from testtime.zoo.recall_lm import MODELS, RecallRecipe, model_config, train_recall_lm


def test_baselines_match_lact_in_parameters_and_unknown_names_fail():
    recipe = RecallRecipe()
    sizes = {name: num_parameters(TinyLM(model_config(name, recipe))) for name in MODELS}
    assert sizes["lact"] == sizes["ttt-small-chunk"] and abs(sizes["attention"] - sizes["lact"]) < 0.01 * sizes["lact"]
    with pytest.raises(ValueError, match="unknown recall model"):
        model_config("mamba", recipe)


def test_zoo_trainer_writes_a_loadable_model_with_card_and_resumes(tmp_path):
    torch.set_num_threads(1)
    train = TRAINERS.get("lact-mqar")
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(tmp_path / "run", 2, 0, True, 1)
    info = train(tmp_path / "run", 2, 0, False, 1)
    assert info["steps"] == 2 and set(info) >= {"final_loss", "accuracy_98"}
    kind, model = load_model(tmp_path / "run" / "model")
    assert kind == "tiny-lm" and model.cfg.mixer == "lact"
    assert "Trained 2 of 2 steps" in (tmp_path / "run" / "model" / "README.md").read_text()
    with pytest.raises(FileExistsError, match="--resume"):
        train(tmp_path / "run", 2, 0, False, 1)
    # resuming a finished run trains nothing more and gives the same weights
    again, log = train_recall_lm("lact", RecallRecipe(steps=2), tmp_path / "run")
    assert len(log) == 2 and torch.equal(again.blocks[0].mixer.w1, model.blocks[0].mixer.w1)
