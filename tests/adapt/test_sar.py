"""SAR: reliable-entropy filter, two-pass SAM step, recovery reset, skipped layers."""

from __future__ import annotations

from torch import nn

from testtime.adapt import SAR
from testtime.adapt.sar import default_exclude

from .tiny import changed, images, shifted_accuracy, state, tiny_net, trained_net


def test_sar_takes_two_passes_on_norm_affine_and_works_with_batch_one_gn():
    model = tiny_net("gn")
    before = state(model)
    method = SAR(model, e_margin=3.0, lr=1e-2)
    out = method(images(1))
    assert out.shape == (1, 10)
    assert (method.forwards, method.backwards) == (2, 2)
    assert changed(before, model) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert method.optimizer.param_groups[0]["lr"] == 1e-2


def test_unreliable_batches_are_skipped():
    model = tiny_net()
    before = state(model)
    method = SAR(model, e_margin=1e-6)
    method(images(8))
    assert not changed(before, model) and (method.forwards, method.backwards) == (1, 0)


def test_recovery_resets_when_the_loss_ema_is_low():
    model = tiny_net()
    source = state(model)
    method = SAR(model, e_margin=3.0, reset_constant=100.0, lr=1e-2)  # any loss is "low"
    method(images(8))
    assert method.resets == 1 and method.loss_ema is None
    assert not changed(source, model)


def test_default_lr_is_the_reference_cifar_setting():
    assert SAR(tiny_net()).optimizer.param_groups[0]["lr"] == 1e-3


def test_auto_lr_scales_with_small_batches():
    method = SAR(tiny_net("gn"), e_margin=3.0, lr=None)
    method(images(4))
    assert method.optimizer.param_groups[0]["lr"] == 2.5e-4 / 64 * 4 * 2
    method(images(64))
    assert method.optimizer.param_groups[0]["lr"] == 2.5e-4


def test_excluded_layers_stay_frozen():
    model = tiny_net()
    before = state(model)
    SAR(model, e_margin=3.0, lr=1e-2, exclude=["4"])(images(8))
    assert changed(before, model) == {"1.weight", "1.bias"}
    resnet_like = nn.Module()
    resnet_like.layer4 = nn.BatchNorm2d(2)
    assert default_exclude(resnet_like) == ["layer4"]
    vit_like = nn.Module()
    vit_like.blocks = nn.Sequential(*[nn.LayerNorm(2) for _ in range(12)])
    assert default_exclude(vit_like) == ["blocks.9", "blocks.10", "blocks.11", "norm"]
    assert default_exclude(tiny_net()) == []


def test_sar_adapts_under_shift():
    assert shifted_accuracy(SAR(trained_net())) > 0.6
