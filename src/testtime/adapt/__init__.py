"""Test-time adaptation of classifiers.

``method = testtime.adapt.get_method("tent", model)`` (or ``testtime.adapt.Tent(model)``)
wraps any ``nn.Module`` classifier; ``logits = method(x)`` predicts and adapts online.
See :mod:`testtime.adapt.base` for the contract; ``ADAPT_METHODS.names()`` lists the
methods. Methods that need source data take ``source_data=`` ((x, y) batches or an
(x, y) tensor pair): eata (Fisher), cafa (class Gaussians), petal (SWAG prior), psmt
(EWC Fisher), itta (its joint training) and label-shift (its adapter).
Every ``forward`` adapts even under ``torch.no_grad()``.
"""

from testtime.adapt.base import ADAPT_METHODS, AdaptMethod, SourceData, get_method
from testtime.adapt.cafa import CAFA
from testtime.adapt.cotta import CoTTA
from testtime.adapt.eata import EATA, ETA
from testtime.adapt.itta import ITTA, train_itta
from testtime.adapt.label_shift import LabelShiftAdapter, LabelShiftTTA, train_label_shift_adapter
from testtime.adapt.lame import LAME
from testtime.adapt.nhl import NHL
from testtime.adapt.norm import BNAdapt, BNAlpha, Source
from testtime.adapt.params import collect_norm_params, configure_norm
from testtime.adapt.petal import PETAL
from testtime.adapt.psmt import PSMT
from testtime.adapt.rotta import RoTTA
from testtime.adapt.sar import SAR
from testtime.adapt.tent import Tent

# Methods that cannot run without source data (the benchmark passes clean train images).
NEEDS_SOURCE_DATA = ("eata", "cafa", "petal", "itta", "label-shift")

__all__ = [
    "ADAPT_METHODS",
    "CAFA",
    "EATA",
    "ETA",
    "ITTA",
    "LAME",
    "NEEDS_SOURCE_DATA",
    "NHL",
    "PETAL",
    "PSMT",
    "SAR",
    "AdaptMethod",
    "BNAdapt",
    "BNAlpha",
    "CoTTA",
    "LabelShiftAdapter",
    "LabelShiftTTA",
    "RoTTA",
    "Source",
    "SourceData",
    "Tent",
    "collect_norm_params",
    "configure_norm",
    "get_method",
    "train_itta",
    "train_label_shift_adapter",
]
