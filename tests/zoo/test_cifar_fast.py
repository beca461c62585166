"""The fast recipe: whitening init, head-scale folding, Lookahead, schedule, calibration,
step-level resume; the airbench convnet and the LayerNorm ViT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from testtime.adapt.sar import default_exclude
from testtime.zoo.cifar import build_model, config_for, load_cifar_model, train_cifar
from testtime.zoo.cifar_fast import Lookahead, calibration, lr_factor, translate

TINY = {"widths": [8, 16, 16], "batch_size": 50, "eval_every": 1}


def _data(n: int = 200, m: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = (rng.integers(0, 60, (n, 32, 32, 3)) + (y * 20)[:, None, None, None]).astype(np.uint8)
    vy = np.arange(m) % 10
    vx = (rng.integers(0, 60, (m, 32, 32, 3)) + (vy * 20)[:, None, None, None]).astype(np.uint8)
    return x, y, vx, vy


def test_whitening_init_decorrelates_patches():
    model = build_model(config_for("airnet-bn"))
    images = torch.rand(64, 3, 32, 32) ** 2
    model.init_whitening(images)
    with torch.no_grad():
        out = nn.functional.conv2d(model.normalize(images), model.whiten.weight[:12])
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = flat.T @ flat / len(flat)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])


def test_head_scale_folds_into_a_plain_linear_head():
    model = build_model(config_for("airnet-bn")).eval()
    x = torch.rand(4, 3, 32, 32)
    before = model(x)
    model.fold_head_scale()
    assert model.head_scale == 1.0 and model.config.head_scale == 1.0
    assert torch.allclose(model(x), before, atol=1e-6)
    assert torch.allclose(model.fc(model.features(x)), before, atol=1e-6)  # no scaling left


def test_schedule_and_lookahead_by_hand():
    assert lr_factor(0, 100, 0.2, 0.2, 0.07) == 0.2
    assert lr_factor(10, 100, 0.2, 0.2, 0.07) == pytest.approx(0.6)
    assert lr_factor(20, 100, 0.2, 0.2, 0.07) == 1.0
    assert lr_factor(100, 100, 0.2, 0.2, 0.07) == pytest.approx(0.07)
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    look = Lookahead(model)
    with torch.no_grad():
        model.weight.fill_(3.0)
    look.update(model, 0.75)  # ema = 0.75·1 + 0.25·3 = 1.5, and the model is reset to it
    assert torch.allclose(model.weight, torch.full((1, 2), 1.5))


def test_translation_moves_whole_images_by_at_most_pad():
    x = torch.zeros(16, 3, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = translate(x, 2, torch.Generator().manual_seed(0))
    rows, cols = (out[:, 0] == 1.0).nonzero()[:, 1:].T
    assert len(rows) == 16 and (rows - 4).abs().max() <= 2 and (cols - 4).abs().max() <= 2


class _Fixed(nn.Module):
    """Returns preset logits, batch after batch (images ignored)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits, self.i = logits, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits[self.i : self.i + len(x)]
        self.i += len(x)
        return out


def test_calibration_by_hand():
    logits = torch.full((4, 10), 0.0)
    logits[0, 0] = logits[1, 1] = 20.0  # confident and right
    logits[2, 2] = 20.0  # confident and wrong (label 3)
    # image 3: uniform — confidence 0.1, wrong (argmax 0 vs label 3)
    labels = np.array([0, 1, 3, 3])
    out = calibration(_Fixed(logits), np.zeros((4, 32, 32, 3), np.uint8), labels, batch_size=2)
    conf = 1 / (1 + 9 * math.exp(-20))
    # bins: three images at conf≈1 (2 right), one at 0.1 (wrong)
    ece = 0.75 * abs(2 / 3 - conf) + 0.25 * abs(0 - 0.1)
    assert out["accuracy"] == 0.5 and out["ece"] == pytest.approx(ece, abs=1e-6)
    assert out["frac_below_e0"] == 0.75 and out["mean_max_softmax"] == pytest.approx(
        (3 * conf + 0.1) / 4, abs=1e-6
    )


@pytest.mark.parametrize("name", ["airnet-bn", "vit-ln"])
def test_training_resumes_from_a_mid_epoch_step_bit_for_bit(tmp_path, name):
    data = _data()
    over = dict(TINY, widths=[8, 16, 16] if name == "airnet-bn" else [16], depth=1)
    over["epochs"] = 2  # an override counts when the epochs argument is not given
    kw = {"progress": False, "overrides": over, "data": data, "log": lambda s: None}
    full = train_cifar(name, tmp_path / "full", **kw)
    part = train_cifar(name, tmp_path / "cut", max_steps=3, **kw)  # 4 steps per epoch
    assert part == {"steps": 3, "total_steps": 8, "wall_s": part["wall_s"], "finished": False}
    resumed = train_cifar(name, tmp_path / "cut", resume=True, **kw)
    assert [h["train_loss"] for h in resumed["history"]] == [
        h["train_loss"] for h in full["history"]
    ]
    a = load_cifar_model(name, path=tmp_path / "full")
    b = load_cifar_model(name, path=tmp_path / "cut")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    for key in ("accuracy", "ece", "nll", "mean_max_softmax", "frac_below_e0"):
        assert key in full
    card = (tmp_path / "full" / "README.md").read_text()
    assert "Clean CIFAR-10 test accuracy" in card and "label smoothing\n  0.0" in card
    assert a.config.label_smoothing == 0.0 and a.config.head_scale == 1.0


def test_vit_names_match_sar_defaults_and_classify():
    model = build_model(config_for("vit-ln")).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert default_exclude(model) == ["blocks.3", "blocks.4", "blocks.5", "norm"]
    assert any(isinstance(m, nn.LayerNorm) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
