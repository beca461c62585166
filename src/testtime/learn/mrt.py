"""MRT's progress reward as a dense bonus for the GRPO trainer (Qu et al. 2025,
"Optimizing test-time compute via meta reinforcement fine-tuning"; spec §11).

A solution's thinking is split into episodes (here: its step lines). After
episode j the answer is forced (``answer:`` appended) and sampled
``mrt_samples`` times; ``J(j)`` is the share of forced answers that match the
reward's target (TTRL's pseudo-label: no reference answer is read). The
progress of episode j, ``r_j = J(j) - J(j-1)`` (J(0): answer forced before any
step), is added to the advantage of episode j's tokens, scaled by ``mrt_alpha``:
steps that move the model towards the answer are reinforced, idle ones are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from testtime.learn.common import vote_keys
from testtime.learn.grpo import GRPOConfig
from testtime.learn.policy import Policy, Rollout
from testtime.tasks.base import ANSWER_PREFIX, Problem, Task

FORCED_ANSWER_TOKENS = 12


def episodes(policy: Policy, rollout: Rollout) -> list[tuple[int, int]]:
    """Token spans [start, end) of the step lines before the answer line."""
    spans, start, line = [], 0, ""
    for t, tok in enumerate(rollout.ids):
        piece = policy.detok.pieces[tok] if tok < len(policy.detok.pieces) else ""
        line += piece
        if "\n" in piece:
            if line.strip().startswith(ANSWER_PREFIX):
                break
            spans.append((start, t + 1))
            start, line = t + 1, ""
    return spans


def progress_bonus(
    policy: Policy,
    task: Task,
    problems: Sequence[Problem],
    rollouts: Sequence[Sequence[Rollout]],
    labels: Sequence[str | None],
    cfg: GRPOConfig,
    seed: int | None,
) -> tuple[torch.Tensor, int]:
    """Per-token progress bonus (rows = flattened rollouts, right-padded) and the
    tokens generated to estimate it."""
    forced = policy.tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)
    prompts: list[list[int]] = []
    index: list[tuple[int, list[tuple[int, int]], int, int]] = []  # row, spans, group, first prompt
    flat = [(g, r) for g, row in enumerate(rollouts) for r in row]
    for row, (g, r) in enumerate(flat):
        spans = episodes(policy, r)
        index.append((row, spans, g, len(prompts)))
        cuts = [0] + [end for _, end in spans]
        prompts += [r.prompt_ids + r.ids[:c] + forced for c in cuts]
    T = max(1, max(r.length for _, r in flat))
    bonus = torch.zeros(len(flat), T)
    if not prompts:
        return bonus, 0
    samples, usage = policy.rollouts(
        prompts, cfg.mrt_samples, temperature=cfg.temperature, max_tokens=FORCED_ANSWER_TOKENS,
        seed=seed, stop=("\n",),
    )
    for row, spans, g, first in index:
        label, problem = labels[g], problems[g]
        J = []
        for j in range(len(spans) + 1):
            texts = [ANSWER_PREFIX + s.text for s in samples[first + j]]
            keys = vote_keys(task, problem, texts)
            J.append(sum(k is not None and k == label for k in keys) / len(keys))
        for j, (start, end) in enumerate(spans, 1):
            bonus[row, start:end] = J[j] - J[j - 1]
    return bonus, usage.completion_tokens
