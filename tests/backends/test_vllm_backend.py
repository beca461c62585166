"""vLLM mapping (runs everywhere) and the engine itself (only where vllm is installed)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from testtime.backends import get_generator
from testtime.backends.base import BackendError, SamplingParams
from testtime.backends.seeds import server_seeds
from testtime.backends.vllm_backend import (
    completion_from_vllm,
    request_params,
    vllm_sampling_params,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@dataclass
class RecordedParams:  # stands in for vllm.SamplingParams: records the keyword arguments
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str] | None
    seed: int | None
    logprobs: int | None


def test_sampling_params_mapping():
    p = vllm_sampling_params(
        SamplingParams(
            n=4, temperature=0.7, top_p=0.9, max_tokens=33, stop=("\n",), seed=5, logprobs=True
        ),
        RecordedParams,
    )
    assert p == RecordedParams(4, 0.7, 0.9, 33, ["\n"], 5, 0)
    assert vllm_sampling_params(SamplingParams(), RecordedParams).logprobs is None
    assert vllm_sampling_params(SamplingParams(), RecordedParams).stop is None


def test_every_prompt_gets_its_own_seed():
    prompts = ["a\n", "b\n", "a\n"]
    seeded = request_params(SamplingParams(n=2, seed=5), prompts, RecordedParams)
    assert [p.seed for p in seeded] == [row[0] for row in server_seeds(5, prompts, 1)]
    assert len({p.seed for p in seeded}) == 3 and all(p.n == 2 for p in seeded)
    assert [p.seed for p in request_params(SamplingParams(), prompts, RecordedParams)] == [None] * 3


def test_completion_from_vllm_output():
    lp = SimpleNamespace
    out = SimpleNamespace(
        text="7+3=10",
        token_ids=[4, 9],
        finish_reason="stop",
        stop_reason="\n",
        logprobs=[{4: lp(logprob=-0.5), 1: lp(logprob=-2.0)}, {9: lp(logprob=-0.25)}],
    )
    c = completion_from_vllm(out, want_logprobs=True)
    assert (c.text, c.finish_reason, c.num_tokens, c.stop_string) == ("7+3=10", "stop", 2, "\n")
    assert c.token_logprobs == [-0.5, -0.25] and c.token_ids == [4, 9]
    out.finish_reason, out.stop_reason = None, None
    assert completion_from_vllm(out, want_logprobs=False).finish_reason == "cancelled"


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed: the missing-package error cannot occur")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(BackendError, match="needs the vllm package"):
        get_generator("vllm:some/model")


@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (optional extra, GPU only)")
def test_vllm_engine_on_the_tiny_model(tiny_model_dir):
    gen = get_generator(f"vllm:{tiny_model_dir}", gpu_memory_utilization=0.2, enforce_eager=True)
    res = gen.generate(["abc\n"], SamplingParams(n=3, max_tokens=8, seed=0, logprobs=True))
    assert len(res.completions[0]) == 3
    assert all(len(c.token_logprobs) == c.num_tokens for c in res.completions[0])
    assert res.usage.completion_tokens == sum(c.num_tokens for c in res.completions[0])
