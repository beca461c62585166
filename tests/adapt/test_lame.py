"""LAME: output-only Laplacian refinement; no parameter changes."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt import LAME
from testtime.adapt.lame import affinity, laplacian_optimization

from .tiny import changed, images, state, tiny_net


def test_lame_changes_no_parameter_or_buffer():
    model = tiny_net()
    before = state(model)
    method = LAME(model)
    out = method(images(16))
    assert not changed(before, model) and method.backwards == 0
    assert torch.allclose(out.softmax(1).sum(1), torch.ones(16), atol=1e-5)


def test_single_image_keeps_the_model_prediction():
    model = tiny_net()
    x = images(1)
    # kNN has no self-affinity; RBF keeps W_ii = 1 (the reference), which sharpens
    assert torch.allclose(LAME(model, affinity="knn")(x).softmax(1), model(x).softmax(1), atol=1e-5)


def test_neighbours_agree_after_refinement():
    # two tight feature clusters; one member of each has a wrong, weakly held prediction
    g = torch.Generator().manual_seed(0)
    feats = torch.cat(
        [torch.randn(6, 4, generator=g) * 0.01 + 5, torch.randn(6, 4, generator=g) * 0.01 - 5]
    )
    probs = torch.tensor([[0.9, 0.1]] * 5 + [[0.4, 0.6]] + [[0.1, 0.9]] * 5 + [[0.6, 0.4]])
    y = laplacian_optimization(probs, affinity(feats, "knn", k=3))
    assert y[:6].argmax(1).tolist() == [0] * 6 and y[6:].argmax(1).tolist() == [1] * 6
    kernel = affinity(feats, "knn", k=3)
    assert kernel.diagonal().sum() == 0 and (kernel.sum(1) == 3).all()
    assert affinity(feats, "rbf").shape == (12, 12)
    z = torch.nn.functional.normalize(feats, dim=1)
    assert torch.allclose(affinity(feats, "linear"), z @ z.T)


def test_rbf_sigma_counts_the_point_itself():
    # four points on the unit circle (normalisation leaves them unchanged)
    angles = torch.tensor([0.0, 0.3, 0.9, 2.0])
    feats = torch.stack([angles.cos(), angles.sin()], 1)
    dist = torch.cdist(feats, feats)
    # k = 2 counting the point itself = the nearest *other* point
    sigma = dist.sort(1).values[:, 1].mean()
    expected = torch.exp(-(dist**2) / (2 * sigma**2))
    assert torch.allclose(affinity(feats, "rbf", k=2), expected, atol=1e-6)
    assert torch.allclose(affinity(feats, "rbf", k=2).diagonal(), torch.ones(4))
    assert LAME(tiny_net()).kind == "rbf" and LAME(tiny_net()).knn == 5
    with pytest.raises(ValueError, match="unknown affinity"):
        LAME(tiny_net(), affinity="cosine")
