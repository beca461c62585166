"""Agent test helpers: a Generator whose completion is a function of the prompt (a scripted
policy model), a tiny random GPT-2 and a one-thread fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from tiny_gpt2 import one_thread, save_tiny_reasoner

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
    return save_tiny_reasoner(tmp_path_factory.mktemp("tiny-agent"), n_positions=256)


@pytest.fixture(name="one_thread")
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield
