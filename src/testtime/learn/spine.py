"""SPINE (Wu et al. 2025, "SPINE: token-selective test-time reinforcement learning
with entropy-band regularization"; spec §9): TTRL's majority reward, but the
policy gradient updates only the forking tokens — the top ``mask_top`` (20%)
highest-entropy tokens of the batch, from the forward pass
(:func:`testtime.learn.grpo_math.forking_mask`) — and an entropy-band regulariser at
those tokens (:func:`testtime.learn.grpo_math.entropy_band`) pushes entropy up where
it is below the band (sustaining exploration) and down where it is above it
(suppressing noisy drift), against entropy and response-length collapse; a KL
anchor is available through ``kl_coef``. Checked against the paper's abstract
(forking tokens from forward-pass entropy, a two-sided band at those tokens,
GRPO-style, optional KL). Deviation: the band's bounds are the ``band_low`` /
``band_high`` quantiles of the forking tokens' entropy at rollout time — the
paper's exact bounds and selection rule could not be read here (no code).
"""

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
