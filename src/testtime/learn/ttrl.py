"""TTRL: test-time reinforcement learning (Zuo et al. 2025, spec §9).

GRPO on the *unlabeled* test prompts: for each prompt ``n_votes`` samples are
drawn, their majority answer is the pseudo-label, and ``n_samples`` of them are
rewarded ``1[answer == pseudo-label]``. The references are read only to
evaluate (before/after) and to log the pseudo-labels' accuracy. Also the
runner of the other GRPO-based methods (ETTRL, SPINE): they differ only in
options and rollout function.
"""

from __future__ import annotations

from typing import Any

from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import RunDir, require_answers
from testtime.learn.grpo import GRPOConfig, GRPOTrainer
from testtime.learn.policy import Policy


def run_grpo(request: LearnRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    cfg = build_config(GRPOConfig, {"seed": request.seed, **defaults}, request.options, request.method)
    require_answers(request.task, request.problems, request.method)
    policy = Policy(request.model_dir)
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    try:
        trainer = GRPOTrainer(
            policy, request.task, request.problems, request.problems, cfg, run,
            show_progress=request.show_progress,
        )
        return trainer.train()
    finally:
        run.close()


@METHODS.register("ttrl")
@takes_options(GRPOConfig)
def ttrl(request: LearnRequest) -> dict[str, Any]:
    return run_grpo(request, {})
