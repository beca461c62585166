"""Agent test helpers: a Generator whose completion is a function of the prompt (a scripted
policy model), a tiny random GPT-2 and a one-thread fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from testtime.backends.base import Completion, GenerationResult, Generator, SamplingParams, Usage


class FunctionGenerator(Generator):
    """Completes each prompt with ``reply(prompt)``; a token is a whitespace-separated word."""

    name = "function"

    def __init__(self, reply: Callable[[str], str]) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    @property
    def num_parameters(self) -> int:
        return 1000

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: Sequence[str], params: SamplingParams, *, cancel=None,
                 on_finish=None) -> GenerationResult:
        self.prompts += list(prompts)
        out, usage = [], Usage()
        for prompt in prompts:
            text = self.reply(prompt)
            words = text.split()[: params.max_tokens]
            out.append([Completion(text, "stop", len(words))])
            usage += Usage(self.count_tokens(prompt), len(words), 1)
        return GenerationResult(out, usage)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 with TinyReasoner's character tokenizer and a 256-token context."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from testtime.zoo.tokenizer import build_tokenizer

    path = tmp_path_factory.mktemp("tiny-agent")
    tok = build_tokenizer()
    config = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models run much faster on one thread than on contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
