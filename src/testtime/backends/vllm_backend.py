"""vLLM's offline engine (Kwon et al. 2023, "Efficient Memory Management for Large
Language Model Serving with PagedAttention") behind the Generator interface.

Optional: ``pip install 'testtime[vllm]'`` on a GPU machine. Requests are fed to
``LLM.llm_engine`` and stepped by hand, so a :class:`CancelToken` aborts them
between engine steps and ``on_finish`` fires as each sample completes. vLLM's
prefix caching shares a prompt's KV across its ``n`` samples, so its prompt
tokens are counted once. Logprobs are vLLM's default raw (untempered) values,
the same convention as the local engines.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from testtime.backends.base import (
    BackendError,
    CancelToken,
    Completion,
    FinishCallback,
    GenerationResult,
    Generator,
    SamplingParams,
    Usage,
)
from testtime.backends.seeds import server_seeds


def vllm_sampling_params(params: SamplingParams, cls: Any) -> Any:
    """Our SamplingParams as vLLM's (``cls`` = ``vllm.SamplingParams``).
    ``logprobs=0`` asks for the sampled token's log-probability only."""
    return cls(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        max_tokens=params.max_tokens,
        stop=list(params.stop) or None,
        seed=params.seed,
        logprobs=0 if params.logprobs else None,
    )


def request_params(params: SamplingParams, prompts: Sequence[str], cls: Any) -> list[Any]:
    """One vLLM SamplingParams per prompt; seeded, each prompt's own seed
    (:func:`~testtime.backends.seeds.server_seeds`), so repeated prompts differ and a
    prompt's samples do not depend on its batch-mates."""
    if params.seed is None:
        return [vllm_sampling_params(params, cls)] * len(prompts)
    seeds = server_seeds(params.seed, prompts, 1)
    return [vllm_sampling_params(replace(params, seed=row[0]), cls) for row in seeds]


def completion_from_vllm(out: Any, want_logprobs: bool) -> Completion:
    """A vLLM ``CompletionOutput`` (text, token_ids, logprobs, finish_reason, stop_reason)."""
    logprobs = None
    if want_logprobs:
        # out.logprobs[t] maps token id -> Logprob for step t; take the sampled token's.
        logprobs = [
            step[tok].logprob for tok, step in zip(out.token_ids, out.logprobs or [], strict=True)
        ]
    reason = out.finish_reason
    return Completion(
        text=out.text,
        finish_reason="length" if reason == "length" else ("stop" if reason else "cancelled"),
        num_tokens=len(out.token_ids),
        token_logprobs=logprobs,
        stop_string=out.stop_reason if isinstance(out.stop_reason, str) else None,
        token_ids=list(out.token_ids),
    )


class VLLMGenerator(Generator):
    """``VLLMGenerator("Qwen/Qwen2.5-0.5B-Instruct", gpu_memory_utilization=0.8)``;
    other keyword options go to ``vllm.LLM``; ``num_parameters`` enables FLOP estimates."""

    def __init__(
        self, model: str, *, num_parameters: int | None = None, **llm_options: Any
    ) -> None:
        try:
            import vllm
        except ImportError as err:
            raise BackendError(
                "backend vllm needs the vllm package (pip install 'testtime[vllm]', GPU only)"
            ) from err
        self._vllm = vllm
        self.model = model
        self.name = f"vllm:{model}"
        self.llm = vllm.LLM(model=model, **llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        self._ids = itertools.count()
        self._num_params = num_parameters

    @property
    def num_parameters(self) -> int | None:
        return self._num_params

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        engine = self.llm.llm_engine
        ids = {}
        per_prompt = request_params(params, prompts, self._vllm.SamplingParams)
        for i, (prompt, sp) in enumerate(zip(prompts, per_prompt, strict=True)):
            rid = f"testtime-{next(self._ids)}"
            ids[rid] = i
            engine.add_request(rid, prompt, sp)
        latest: dict[int, Any] = {}
        reported: set[tuple[int, int]] = set()
        while engine.has_unfinished_requests():
            if cancel is not None and cancel.cancelled:
                engine.abort_request(
                    [rid for rid, i in ids.items() if i not in latest or not latest[i].finished]
                )
                break
            for out in engine.step():
                i = ids.get(out.request_id)
                if i is None:
                    continue
                latest[i] = out
                for o in out.outputs:
                    if o.finish_reason is not None and (i, o.index) not in reported:
                        reported.add((i, o.index))
                        if on_finish is not None:
                            on_finish(i, o.index, completion_from_vllm(o, params.logprobs))
        usage = Usage(calls=len(prompts))
        result = []
        for i in range(len(prompts)):
            out = latest.get(i)
            comps = [Completion("", "cancelled", 0) for _ in range(params.n)]
            if out is not None:
                usage.prompt_tokens += len(out.prompt_token_ids or [])
                for o in out.outputs:
                    comps[o.index] = completion_from_vllm(o, params.logprobs)
            usage.completion_tokens += sum(c.num_tokens for c in comps)
            result.append(comps)
        return GenerationResult(result, usage)
