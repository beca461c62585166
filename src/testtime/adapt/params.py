"""Finding and configuring the parts of a classifier that adaptation methods touch.

Normalisation layers are found by type (``torch.nn`` BatchNorm/GroupNorm/LayerNorm/
InstanceNorm and their subclasses, which covers torchvision and timm models); the
classifier head is the last ``nn.Linear`` (or a layer the user names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

NORM_TYPES: tuple[type[nn.Module], ...] = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, _InstanceNorm)
NORM_MODES = ("frozen", "bn", "affine", "all")


def norm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """All normalisation layers of ``model`` as ``(qualified name, module)``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]


def batchnorm_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def configure_norm(model: nn.Module, mode: str) -> nn.Module:
    """Set train/eval modes and ``requires_grad`` of ``model`` for an adaptation mode.

    - ``frozen``: the source model (eval, no gradients);
    - ``bn``: BatchNorm normalises with the current batch's statistics, no gradients
      (the running buffers are kept untouched, so the source statistics survive);
    - ``affine``: ``bn`` plus gradients for the affine (weight/bias) of every norm
      layer (BN/GN/LN), everything else frozen (Tent, EATA, SAR...);
    - ``all``: ``bn`` plus gradients for every parameter (CoTTA).
    Other layers (dropout...) stay in eval mode.
    """
    if mode not in NORM_MODES:
        raise ValueError(f"unknown norm mode {mode!r}; valid: {', '.join(NORM_MODES)}")
    model.eval()
    model.requires_grad_(mode == "all")
    if mode == "frozen":
        return model
    for m in batchnorm_modules(model):
        # train mode + no running-stat tracking = normalise with batch statistics
        # and never write the (source) running buffers.
        m.train()
        m.track_running_stats = False
    if mode == "affine":
        for p in collect_norm_params(model)[0]:
            p.requires_grad_(True)
    return model


def collect_norm_params(
    model: nn.Module, exclude: Sequence[str] = ()
) -> tuple[list[nn.Parameter], list[str]]:
    """Affine parameters of every norm layer, skipping layers whose qualified name
    starts with one of ``exclude`` (e.g. SAR skips the last stage)."""
    params: list[nn.Parameter] = []
    names: list[str] = []
    for name, m in norm_modules(model):
        if any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        for pname, p in m.named_parameters(recurse=False):
            params.append(p)
            names.append(f"{name}.{pname}" if name else pname)
    return params, names


def trainable_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def find_classifier(model: nn.Module, feature_layer: str | None = None) -> nn.Module:
    """The module whose *input* is the penultimate feature: ``feature_layer`` when
    given (a qualified module name), else the last ``nn.Linear`` of ``model``."""
    if feature_layer is not None:
        modules = dict(model.named_modules())
        if feature_layer not in modules:
            raise ValueError(f"feature_layer {feature_layer!r} is not a module of the model")
        return modules[feature_layer]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            "cannot find the penultimate features: the model has no nn.Linear; "
            "pass feature_layer=<name of the module whose input are the features>"
        )
    return linears[-1]


class FeatureHook:
    """Records the input of the classifier head (the penultimate features) on every
    forward pass, via a forward pre-hook; ``hook.features`` is the last one, flattened."""

    def __init__(self, model: nn.Module, feature_layer: str | None = None) -> None:
        self.layer = find_classifier(model, feature_layer)
        self.features: Tensor | None = None
        self._handle = self.layer.register_forward_pre_hook(self._record)

    def _record(self, module: nn.Module, args: tuple) -> None:
        del module
        self.features = args[0].flatten(1)

    def pop(self) -> Tensor:
        """The features of the last forward pass (an error if there was none)."""
        if self.features is None:
            raise RuntimeError("no forward pass reached the classifier layer")
        feats, self.features = self.features, None
        return feats

    def remove(self) -> None:
        self._handle.remove()


def replace_modules(
    model: nn.Module, match: Callable[[nn.Module], bool], build: Callable[[nn.Module], nn.Module]
) -> int:
    """Replace, in place, every submodule for which ``match`` is true by ``build(old)``;
    returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if match(child):
                setattr(parent, child_name, build(child))
                count += 1
    return count


class ChannelAffine(nn.Module):
    """An identity-initialised element-wise affine map ``h·γ + β`` applied, through a
    forward hook, to the output of ``target`` (per channel: dim 1 for conv/BN/GN
    outputs, the last dim for LayerNorm). Inserts a trainable map without touching
    the model's structure or state-dict; :meth:`remove` takes it out again."""

    def __init__(self, target: nn.Module, channels: int, channel_dim: int = 1) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self._handle = target.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        del module, args
        shape = [1] * out.dim()
        shape[self.channel_dim] = -1
        return out * self.scale.view(shape) + self.shift.view(shape)

    def remove(self) -> None:
        self._handle.remove()


def channels_of(module: nn.Module) -> tuple[int, int]:
    """(number of channels, channel dim) of a conv or norm layer's output."""
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1], -1
    for attr in ("num_features", "num_channels", "out_channels"):
        if hasattr(module, attr):
            return int(getattr(module, attr)), 1
    raise ValueError(f"cannot tell the channels of a {type(module).__name__}")
