"""The fixed-mode RL baselines of TimeHC-RL (Hou et al. 2025): ``system2-rl``, the widely
used rule-based RL where every response deliberates (``mode: deliberate`` forced, the
format and accuracy rewards only), and ``system1-rl``, where every response answers
at once (``mode: intuition`` forced). Same trainer and rewards as
:mod:`testtime.learn.timehc`, without the mode choice or the temporal reward."""

from __future__ import annotations

from typing import Any

from testtime.learn.base import METHODS, LearnRequest, takes_options
from testtime.learn.timehc import TimeHCConfig, run_timehc

SYSTEM2 = {"mode": "deliberate", "temporal": False}
SYSTEM1 = {"mode": "intuition", "temporal": False}


@METHODS.register("system2-rl")
@takes_options(TimeHCConfig, SYSTEM2)
def system2_rl(request: LearnRequest) -> dict[str, Any]:
    return run_timehc(request, SYSTEM2)


@METHODS.register("system1-rl")
@takes_options(TimeHCConfig, SYSTEM1)
def system1_rl(request: LearnRequest) -> dict[str, Any]:
    return run_timehc(request, SYSTEM1)
