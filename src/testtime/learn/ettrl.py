"""ETTRL (Liu et al. 2025, "ETTRL: balancing exploration and exploitation in LLM
test-time reinforcement learning via entropy mechanism"; spec §9): TTRL with the
entropy-fork tree majority rollout (ETMR, :mod:`testtime.learn.tree`: M trees of
one full sample each, forked ``branches`` times at the ``fork_points``
highest-entropy tokens, M(1 + B·N) leaves voted on) and entropy-based advantage
reshaping (EAR "Adv-Res", :func:`testtime.learn.grpo_math.entropy_reshape`:
γ_i = 1 + (H̄ − H_i)/H̄ on the response's mean token entropy within its group, so
low-entropy responses are amplified and high-entropy ones damped). Both are
options of the same GRPO trainer (``rollout=tree``, ``reshape=true``); the
paper's alternative "Adv-Clip" (advantages clipped to ±β) is ``adv_clip=β``.
Checked against the paper's description (ETMR, Adv-Res formula, N = 3, B = 2);
the public code was not available here.
"""

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
