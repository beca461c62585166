"""The AdaptMethod contract, checked on every registered method: counting, reset()
restores the source exactly, state_dict() round-trips resume identically."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from testtime.adapt import ADAPT_METHODS, NEEDS_SOURCE_DATA, AdaptMethod, get_method
from testtime.adapt.base import iter_source_batches
from testtime.registry import UnknownName

from .tiny import images, source_pair, tiny_net

FAST = {
    "cotta": {"n_augs": 2},
    "petal": {"n_augs": 2},
    "psmt": {"n_augs": 2},
    "rotta": {"update_frequency": 8, "memory_size": 10},
    "itta": {"train_steps": 2},
    "label-shift": {"train_steps": 20},
    "eata": {"e_margin": 3.0, "fisher_size": 50},
    "eta": {"e_margin": 3.0},
    "sar": {"e_margin": 3.0},
}
ALL = sorted(ADAPT_METHODS.names())
NO_BN = {"bn", "bn-alpha", "rotta"}  # these need BatchNorm layers


def build(name: str, norm: str = "bn") -> AdaptMethod:
    options = dict(FAST.get(name, {}))
    if name in NEEDS_SOURCE_DATA:
        options["source_data"] = source_pair()
    return get_method(name, tiny_net(norm), **options)


def test_registry_names_are_the_contract():
    assert set(ALL) == {
        "source", "bn", "bn-alpha", "tent", "eta", "eata", "sar", "cotta", "rotta",
        "lame", "petal", "psmt", "cafa", "label-shift", "nhl", "itta",
    }  # fmt: skip
    with pytest.raises(UnknownName, match="valid: .*tent"):
        get_method("tnet", tiny_net())


@pytest.mark.parametrize("name", ALL)
def test_reset_restores_source_and_replays(name):
    method = build(name)
    x1, x2 = images(16, 1), images(16, 2)
    torch.manual_seed(0)
    first = method(x1)
    initial = copy.deepcopy(method._initial)
    assert first.shape == (16, 10) and torch.isfinite(first).all()
    method(x2)
    method(x2)
    assert method.forwards >= 3
    counts = method.forwards, method.backwards
    method.reset()
    assert (method.forwards, method.backwards) == counts  # cost counters survive reset
    for key, value in method.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, initial[key]), key
    torch.manual_seed(0)
    assert torch.allclose(method(x1), first, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_resumes_identically(name):
    a = build(name)
    x = [images(16, s) for s in range(1, 5)]
    torch.manual_seed(0)
    a(x[0])
    a(x[1])
    saved = copy.deepcopy(a.state_dict())
    torch.manual_seed(1)
    expected = [a(x[2]), a(x[3])]
    b = build(name)
    b.load_state_dict(saved)
    assert (b.forwards, b.backwards) == (
        saved["_extra_state"]["forwards"],
        saved["_extra_state"]["backwards"],
    )
    torch.manual_seed(1)
    got = [b(x[2]), b(x[3])]
    for e, g in zip(expected, got, strict=True):
        assert torch.allclose(e, g, atol=1e-5)
    # and reset() of the resumed method still goes back to the source, not to `saved`
    b.reset()
    fresh = build(name)
    torch.manual_seed(2)
    ref = fresh(x[0])
    torch.manual_seed(2)
    assert torch.allclose(b(x[0]), ref, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(ALL) - NO_BN))
def test_group_norm_models_and_batch_size_one(name):
    method = build(name, norm="gn")
    out = method(images(1, 3))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_eval_keeps_the_method_configuration():
    method = get_method("tent", tiny_net())
    method.eval()
    bn = method.model[1]
    assert bn.training and not bn.track_running_stats  # still batch statistics


def test_bad_input_is_a_clear_error():
    method = get_method("tent", tiny_net())
    with pytest.raises(ValueError, match="non-empty batch"):
        method(torch.zeros(0, 3, 8, 8))
    with pytest.raises(TypeError, match="nn.Module"):
        get_method("tent", "resnet")


def test_iter_source_batches_accepts_pairs_and_iterables():
    x, y = source_pair(10)
    pairs = list(iter_source_batches((x, y), batch_size=4))
    assert [len(b[0]) for b in pairs] == [4, 4, 2]
    assert len(list(iter_source_batches([(x, y), (x, y)]))) == 2
    with pytest.raises(ValueError, match="needs source_data"):
        list(iter_source_batches(None, method="EATA"))
    with pytest.raises(ValueError, match="10 inputs but 3 labels"):
        list(iter_source_batches((x, y[:3])))


def test_methods_that_need_source_data_say_so():
    for name in NEEDS_SOURCE_DATA:
        with pytest.raises(ValueError, match="source_data"):
            get_method(name, tiny_net())


def test_any_module_with_a_linear_head_works():
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 10)
    )
    method = get_method("tent", model)
    before = model[2].weight.clone()
    method(torch.randn(8, 3, 2, 2))
    assert not torch.equal(before, model[2].weight)
    lame = get_method(
        "lame", nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10))
    )
    assert lame(torch.randn(8, 3, 2, 2)).shape == (8, 10)
