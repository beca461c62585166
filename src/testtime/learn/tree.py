"""ETTRL's entropy-fork tree majority rollout (Liu et al. 2025, spec §9 [verify]).

Per tree: sample one full response, measure the policy's entropy at each of its
tokens, and at the ``fork_points`` highest-entropy positions resample
``branches`` continuations that *reuse the prefix* up to that position (only
the new suffix is generated). A tree has ``1 + fork_points × branches`` leaves
(3 × 2 → 7); enough trees are grown to give ``n_votes`` leaves per prompt, and
the vote (and training) runs over the leaves. Fewer tokens are generated than
for ``n_votes`` independent samples because every fork shares its prefix.
"""

from __future__ import annotations

import math

import torch

from testtime.learn.grpo import GRPOConfig
from testtime.learn.policy import Policy, Rollout
from testtime.scale.common import derive_seed


def leaves_per_tree(cfg: GRPOConfig) -> int:
    return 1 + cfg.fork_points * cfg.branches


def fork_positions(entropy: torch.Tensor, length: int, k: int) -> list[int]:
    """The ``k`` highest-entropy positions among the first ``length - 1`` tokens (forking
    at the last token would resample nothing but it), ascending. A response too short
    for ``k`` forks is padded with forks at position 0 (fresh samples), so every tree
    has the same number of leaves and GRPO groups stay equal in size."""
    usable = max(0, length - 1)
    top = torch.topk(entropy[:usable], min(k, usable)).indices.tolist() if usable else []
    return sorted(top + [0] * (k - len(top)))


def tree_rollouts(
    policy: Policy, prompt_ids: list[list[int]], cfg: GRPOConfig, seed: int
) -> tuple[list[list[Rollout]], int]:
    """``n_votes`` (rounded up to whole trees) leaves per prompt and the generated tokens."""
    trees = math.ceil(cfg.n_votes / leaves_per_tree(cfg))
    roots, usage = policy.rollouts(
        prompt_ids, trees, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
        seed=derive_seed(seed, "roots"),
    )
    tokens = usage.completion_tokens
    flat = [r for row in roots for r in row]
    with torch.no_grad():
        stats = policy.token_stats([r.prompt_ids for r in flat], [r.ids for r in flat])
    forks: list[tuple[int, int]] = []  # (root index in flat, fork position)
    for i, root in enumerate(flat):
        forks += [(i, t) for t in fork_positions(stats.entropy[i], root.length, cfg.fork_points)]
    leaves: list[list[Rollout]] = [[] for _ in prompt_ids]
    for i, root in enumerate(flat):
        leaves[i // trees].append(root)
    if forks:
        fork_prompts = [flat[i].prompt_ids + flat[i].ids[:t] for i, t in forks]
        # Each fork may run to the same total length as its root could.
        budget = max(1, cfg.max_tokens - min(t for _, t in forks))
        rows, usage = policy.rollouts(
            fork_prompts, cfg.branches, temperature=cfg.temperature, max_tokens=budget,
            seed=derive_seed(seed, "forks"),
        )
        for (i, t), row in zip(forks, rows, strict=True):
            root = flat[i]
            for leaf in row:
                keep = leaf.ids[: cfg.max_tokens - t]  # same length cap as independent samples
                ids = root.ids[:t] + keep
                text = policy.detok.decode(ids)
                leaves[i // trees].append(Rollout(root.prompt_ids, ids, text, leaf.finish_reason))
        tokens += usage.completion_tokens  # what was generated, cut or not
    return leaves, tokens
