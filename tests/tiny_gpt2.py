"""Helpers shared by the test packages: tiny random GPT-2s with TinyReasoner's character
tokenizer, and one-thread torch (importable because ``tests/conftest.py`` puts ``tests/``
on the path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from testtime.zoo.tokenizer import build_tokenizer


@contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models run ~30x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_tiny_reasoner(path: Path, *, seed: int = 0, n_positions: int = 160) -> Path:
    """A random 2-layer, 32-wide GPT-2 with the character tokenizer, saved at ``path``."""
    tok = build_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
