"""A TinyReasoner-like model for backend tests: a small random GPT-2 with a
character-level tokenizer (bos/eos/pad), saved in Hugging Face format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

CHARS = list("0123456789abcdefghijklmnopqrstuvwxyz +-*=:>\n")
SPECIALS = ["<pad>", "<bos>", "<eos>"]


def make_char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    # BPE without merges over the raw text = one token per character.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


def save_tiny_gpt2(path: Path, *, seed: int = 0, n_positions: int = 96) -> Path:
    tokenizer = make_char_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=64,
        n_layer=2,
        n_head=4,
        # Larger than GPT-2's 0.02 so the random model has peaked distributions
        # (greedy decoding without near-ties) and samples EOS now and then.
        initializer_range=0.25,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def hf_model(tiny_model_dir: Path) -> GPT2LMHeadModel:
    return GPT2LMHeadModel.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="session")
def lean_gen(tiny_model_dir: Path):
    from testtime.backends.local import LocalGenerator

    return LocalGenerator(tiny_model_dir, engine="lean")


@pytest.fixture(scope="session")
def hf_gen(tiny_model_dir: Path):
    from testtime.backends.local import LocalGenerator

    return LocalGenerator(tiny_model_dir, engine="hf")


@pytest.fixture(scope="session")
def char_tokenizer() -> PreTrainedTokenizerFast:
    return make_char_tokenizer()


@pytest.fixture(autouse=True)
def _fresh_server_traits():
    """What an HTTP backend learns about a server is cached per URL + model for the
    process; every test starts without it (test servers are reused across tests)."""
    from testtime.backends.openai_caps import forget_traits

    forget_traits()
    yield
    forget_traits()
