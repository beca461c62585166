"""SPINE (spec §9 [verify]): TTRL's majority reward, but the policy gradient
updates only the forking tokens — the top ``mask_top`` (20%) highest-entropy
tokens of the batch (:func:`testtime.learn.grpo.forking_mask`) — and an
entropy-band regulariser keeps their entropy between the ``band_low`` and
``band_high`` quantiles of the forking tokens' entropy at rollout time
(:func:`testtime.learn.grpo.entropy_band`), against entropy and response-length
collapse. A KL anchor is available through ``kl_coef``."""

from __future__ import annotations

from typing import Any

from testtime.learn.base import METHODS, LearnRequest, takes_options
from testtime.learn.grpo import GRPOConfig
from testtime.learn.ttrl import run_grpo

PRESET = {"token_mask": "forking", "mask_top": 0.2, "band_coef": 0.1}


@METHODS.register("spine")
@takes_options(GRPOConfig, PRESET)
def spine(request: LearnRequest) -> dict[str, Any]:
    return run_grpo(request, PRESET)
