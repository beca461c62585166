"""A scripted Generator test double and helpers for the serve tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import openai

from testtime.backends.base import (
    CancelToken,
    Capabilities,
    Completion,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
    Usage,
)

API_KEY = "sk-test-key"


class ScriptedGenerator(Generator):
    """Samples are ``script(prompt, call_index, sample_index)``; one "token" per
    whitespace-separated word, decoded in lock-step with ``token_delay`` seconds per
    step, honouring cancellation like a real backend (cancelled tokens still count)."""

    name = "scripted"
    capabilities = Capabilities(logprobs=False, continuation=True, cancellation=True, seed=True)

    def __init__(
        self,
        script: Callable[[str, int, int], str],
        *,
        token_delay: float = 0.0,
        fail: Callable[[], BaseException] | None = None,
    ) -> None:
        self.script = script
        self.token_delay = token_delay
        self.fail = fail
        self.calls = 0
        self.cancelled_samples = 0
        self.finished = threading.Event()  # set whenever a generate() call returns
        self._lock = threading.Lock()

    @property
    def num_parameters(self) -> int:
        return 1000

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        with self._lock:
            call = self.calls
            self.calls += 1
        if self.fail is not None:
            raise self.fail()
        texts = [[self.script(p, call, i) for i in range(params.n)] for p in prompts]
        words = [[t.split(" ") for t in row] for row in texts]
        out: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        usage = Usage(sum(self.count_tokens(p) for p in prompts) * params.n, 0, 1)
        step = 0
        while any(c is None for row in out for c in row):
            step += 1
            time.sleep(self.token_delay)
            stop_all = cancel is not None and cancel.cancelled
            for p, row in enumerate(words):
                for i, toks in enumerate(row):
                    if out[p][i] is not None:
                        continue
                    if stop_all:
                        out[p][i] = Completion(" ".join(toks[: step - 1]), "cancelled", step - 1)
                        self.cancelled_samples += 1
                    elif step >= len(toks):
                        out[p][i] = Completion(texts[p][i], "stop", len(toks))
                        if on_finish is not None:
                            on_finish(p, i, out[p][i])
                    else:
                        continue
                    usage.completion_tokens += out[p][i].num_tokens
        self.finished.set()
        return GenerationResult([[c for c in row if c is not None] for row in out], usage)


def majority_script(prompt: str, call: int, i: int) -> str:
    """Sample i answers 7 unless i % 3 == 1 (answers 8): 7 wins every vote of n >= 2."""
    return f"3 + 4 = 7\nanswer: {8 if i % 3 == 1 else 7}"


def client(url: str, key: str = API_KEY, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, **kwargs)
