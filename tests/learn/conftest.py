"""Tiny random GPT-2s with TinyReasoner's character tokenizer, for fast learn tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_gpt2 import one_thread, save_tiny_reasoner


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def save_answering_tiny(path: Path, *, steps: int = 100, seed: int = 0) -> Path:
    """The tiny model after a second of cross-entropy on ``answer: <n>`` lines (n a
    random digit): it answers most prompts, with varied answers, so majority votes
    and rewards carry signal."""
    from testtime.learn.policy import Policy

    save_tiny_reasoner(path, seed=seed)
    policy = Policy(path)
    rng = random.Random(seed)
    opt = torch.optim.Adam(policy.model.parameters(), lr=1e-2)
    with one_thread():
        for _ in range(steps):
            prompts = [f"arith: {rng.randint(1, 99)} +{rng.randint(1, 9)}\n" for _ in range(16)]
            targets = [f"answer: {rng.randint(0, 9)}\n" for _ in prompts]
            st = policy.token_stats(
                [policy.encode_prompt(p) for p in prompts],
                [policy.tokenizer.encode(t, add_special_tokens=False) + [policy.eos_id] for t in targets],
            )
            loss = -st.logp.sum() / st.mask.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_reasoner(tmp_path_factory.mktemp("tiny-reasoner"))


@pytest.fixture(scope="session")
def answering_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_answering_tiny(tmp_path_factory.mktemp("answering-tiny"))
