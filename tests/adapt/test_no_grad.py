"""Every registered method predicts and adapts inside ``torch.no_grad()``."""

from __future__ import annotations

import pytest
import torch

from testtime.adapt import ADAPT_METHODS, NEEDS_SOURCE_DATA, get_method

from .tiny import images, source_pair, tiny_net

# small settings so that each method updates on a batch of 8
OPTIONS = {
    "eata": {"e_margin": 3.0},
    "eta": {"e_margin": 3.0},
    "sar": {"e_margin": 3.0},
    "rotta": {"update_frequency": 8},
    "cotta": {"n_augs": 2},
    "petal": {"n_augs": 2},
    "psmt": {"n_augs": 2},
    "itta": {"train_steps": 2},
    "label-shift": {"train_steps": 5},
}
NO_PARAMETER_CHANGE = ("source", "bn", "bn-alpha", "lame")


def tensors(method: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the method's state (model, teacher, inserted maps...)."""
    return {k: v.clone() for k, v in method.state_dict().items() if isinstance(v, torch.Tensor)}


def changed(before: dict[str, torch.Tensor], method: torch.nn.Module) -> bool:
    return any(not torch.equal(v, tensors(method)[k]) for k, v in before.items())


@pytest.mark.parametrize("name", ADAPT_METHODS.names())
def test_forward_adapts_under_no_grad(name):
    model = tiny_net()
    options = dict(OPTIONS.get(name, {}))
    if name in NEEDS_SOURCE_DATA or name == "psmt":
        options["source_data"] = source_pair(40)
    method = get_method(name, model, **options)
    before = tensors(method)
    with torch.no_grad():
        out = method(images(8))
    assert out.shape == (8, 10) and torch.isfinite(out).all()
    assert bool(changed(before, method)) == (name not in NO_PARAMETER_CHANGE)
