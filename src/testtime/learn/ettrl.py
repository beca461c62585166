"""ETTRL (Liu et al. 2025, spec §9 [verify]): TTRL with the entropy-fork tree
majority rollout (:mod:`testtime.learn.tree`) and entropy-based advantage
reshaping (:func:`testtime.learn.grpo.entropy_reshape`) — options of the same
GRPO trainer (``rollout=tree``, ``reshape=true``; either can be switched off)."""

from __future__ import annotations

from typing import Any

from testtime.learn.base import METHODS, LearnRequest, takes_options
from testtime.learn.grpo import GRPOConfig
from testtime.learn.ttrl import run_grpo

PRESET = {"rollout": "tree", "reshape": True}


@METHODS.register("ettrl")
@takes_options(GRPOConfig, PRESET)
def ettrl(request: LearnRequest) -> dict[str, Any]:
    return run_grpo(request, PRESET)
