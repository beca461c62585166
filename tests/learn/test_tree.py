"""ETTRL's entropy-fork tree rollout: leaf count, shared prefixes, fewer tokens."""

from __future__ import annotations

import torch

from testtime.learn.grpo import GRPOConfig
from testtime.learn.policy import Policy
from testtime.learn.tree import fork_positions, leaves_per_tree, tree_rollouts


def test_fork_positions_are_the_top_entropy_tokens_before_the_last():
    h = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2, 5.0])
    assert fork_positions(h, 6, 2) == [1, 3]  # the last token (5.0) is never a fork
    # too short for k forks: padded with fresh samples (forks at 0) -> equal tree sizes
    assert fork_positions(h, 3, 4) == [0, 0, 0, 1]
    assert fork_positions(h, 1, 3) == [0, 0, 0]


def test_tree_leaves_share_their_roots_prefix_and_cost_fewer_tokens(answering_dir):
    policy = Policy(answering_dir)
    cfg = GRPOConfig(n_votes=7, n_samples=3, fork_points=3, branches=2, max_tokens=30)
    assert leaves_per_tree(cfg) == 7
    prompts = [policy.encode_prompt("arith: 5 +3\n"), policy.encode_prompt("arith: 41 *2 -7\n")]
    leaves, tokens = tree_rollouts(policy, prompts, cfg, seed=0)
    assert [len(row) for row in leaves] == [7, 7]
    lower = 0  # a fork generates at least the part of its leaf after the shared prefix
    for prompt, row in zip(prompts, leaves, strict=True):
        root = row[0]
        assert all(leaf.prompt_ids == prompt for leaf in row)
        assert all(policy.detok.decode(leaf.ids) == leaf.text for leaf in row)
        lower += root.length
        for leaf in row[1:]:
            assert leaf.length <= cfg.max_tokens
            shared = 0
            while shared < min(root.length, leaf.length) and root.ids[shared] == leaf.ids[shared]:
                shared += 1
            lower += leaf.length - shared
    full = sum(leaf.length for row in leaves for leaf in row)
    assert lower <= tokens < full  # prefixes were reused, not generated again
