"""testtime.learn: test-time learning for language models (spec §§8-11).

Methods (``testtime learn --list``): ``ttrl``, ``ettrl``, ``spine`` (GRPO on
majority-vote pseudo-rewards, :mod:`testtime.learn.grpo`), ``dco`` (confidence-
limiting fine-tuning), ``latentseek`` (policy gradient over hidden states),
``tt-si`` (self-improvement with a LoRA adapter per uncertain problem) and
``dynamic-cheatsheet`` (a test-time memory); ``state-tuning`` tunes an RWKV-7
model's initial state (:mod:`testtime.learn.state_tuning`); ``rerouting`` adapts an MoE
model's router logits on its own context (:mod:`testtime.learn.rerouting`); ``timehc-rl``
(cognitive modes with temporal rewards, :mod:`testtime.learn.timehc`) and its baselines
``system2-rl`` / ``system1-rl`` train on a generated split with gold rewards. Importing this
package registers them.
"""

from testtime.learn import (  # noqa: F401
    cheatsheet,
    dco,
    ettrl,
    latentseek,
    mode_rl,
    rerouting,
    spine,
    state_tuning,
    timehc,
    ttrl,
    ttsi,
)
from testtime.learn.base import METHODS, LearnRequest

__all__ = ["METHODS", "LearnRequest"]
