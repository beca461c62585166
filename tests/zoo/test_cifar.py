"""CIFAR ResNets: the shipped weights load and classify real images; training resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from testtime.zoo.cifar import (
    MODELS,
    CifarConfig,
    build_model,
    evaluate,
    load_cifar_model,
    train_cifar,
    weights_dir,
)

TINY = {"widths": [8, 16, 16, 32], "batch_size": 50, "eval_every": 1}


def _real_images():
    from testtime.data.demo import load_test_set

    try:
        images, labels, _ = load_test_set()
    except FileNotFoundError as err:
        pytest.skip(f"no CIFAR-10 images here (shared copy and demo subset absent): {err}")
    # Every 10th image of the class-sorted set: all classes, a few hundred images.
    idx = np.arange(0, len(images), max(1, len(images) // 300))
    return images[idx], labels[idx]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_weights_load_and_classify(name):
    folder = weights_dir(name)
    if not (folder / "model.safetensors").exists():
        pytest.skip(f"{name}: weights not shipped in {folder}")
    assert (folder / "model.safetensors").stat().st_size <= 10 * 2**20
    card = (folder / "README.md").read_text()
    assert "Clean CIFAR-10 test accuracy" in card
    model = load_cifar_model(name)
    assert not model.training
    images, labels = _real_images()
    acc = evaluate(model, images, labels)
    # Full-test-set accuracy: resnet-bn 88.6%, resnet-gn 84.8% (model cards); a few hundred
    # images leave room for sampling noise, but a broken loader or normalisation gives ~10%.
    floor = {"resnet-bn": 0.75, "resnet-gn": 0.55, "airnet-bn": 0.85, "airnet-gn": 0.8,
             "vit-ln": 0.6}[name]  # fmt: skip
    assert acc > floor, f"{name}: accuracy {acc:.3f} on {len(images)} real test images"
    # Normalisation lives inside the model: inputs are [0, 1] floats.
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)


def test_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="valid: .*resnet-bn, resnet-gn"):
        load_cifar_model("resnet-xx")
    with pytest.raises(FileNotFoundError, match="testtime zoo train"):
        load_cifar_model("resnet-bn", path=tmp_path)


def test_gn_variant_has_no_batchnorm():
    model = build_model(CifarConfig(norm="gn"))
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GroupNorm" in kinds and "BatchNorm2d" not in kinds
    assert sum(p.numel() for p in model.parameters()) * 4 <= 10 * 2**20


def _tiny_data():
    images, labels = _real_images()
    return images[:200], labels[:200], images[200:260], labels[200:260]


def test_training_resumes_bit_for_bit_and_exports(tmp_path):
    data = _tiny_data()
    full = train_cifar("resnet-bn", tmp_path / "full", epochs=2, progress=False,
                       overrides=TINY, data=data, log=lambda s: None)  # fmt: skip

    class Killed(Exception):
        pass

    def die_after_first_epoch(line: str) -> None:
        if json.loads(line)["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train_cifar("resnet-bn", tmp_path / "cut", epochs=2, progress=False,
                    overrides=TINY, data=data, log=die_after_first_epoch)  # fmt: skip
    with pytest.raises(ValueError, match="--resume"):
        train_cifar("resnet-bn", tmp_path / "cut", epochs=2, progress=False,
                    overrides=TINY, data=data, log=lambda s: None)  # fmt: skip
    resumed = train_cifar("resnet-bn", tmp_path / "cut", epochs=2, progress=False, resume=True,
                          overrides=TINY, data=data, log=lambda s: None)  # fmt: skip
    assert [h["train_loss"] for h in resumed["history"]] == [
        h["train_loss"] for h in full["history"]
    ]
    a = load_cifar_model("resnet-bn", path=tmp_path / "full")
    b = load_cifar_model("resnet-bn", path=tmp_path / "cut")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert a.config.widths == (8, 16, 16, 32)
    # Training moved the weights and the loss went down over the two epochs.
    assert full["history"][1]["train_loss"] < full["history"][0]["train_loss"]
    with pytest.raises(ValueError, match="different config"):
        train_cifar("resnet-bn", tmp_path / "cut", epochs=3, progress=False, resume=True,
                    overrides=TINY, data=data, log=lambda s: None)  # fmt: skip
