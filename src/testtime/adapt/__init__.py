"""Test-time adaptation of classifiers.

``method = testtime.adapt.get_method("tent", model)`` (or ``testtime.adapt.Tent(model)``)
wraps any ``nn.Module`` classifier; ``logits = method(x)`` predicts and adapts online.
See :mod:`testtime.adapt.base` for the contract.
"""

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod, SourceData, get_method
from testtime.adapt.norm import BNAdapt, BNAlpha, Source
from testtime.adapt.params import collect_norm_params, configure_norm
from testtime.adapt.tent import Tent

__all__ = [
    "ADAPT_METHODS",
    "AdaptMethod",
    "BNAdapt",
    "BNAlpha",
    "Source",
    "SourceData",
    "Tent",
    "collect_norm_params",
    "configure_norm",
    "get_method",
]
