"""A tiny random GPT-2 with TinyReasoner's character tokenizer, for fast learn tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from testtime.zoo.tokenizer import build_tokenizer


def save_tiny_reasoner(path: Path, *, seed: int = 0, n_positions: int = 160) -> Path:
    tok = build_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_reasoner(tmp_path_factory.mktemp("tiny-reasoner"))
