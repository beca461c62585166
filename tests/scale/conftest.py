"""Test doubles for strategy unit tests: a scripted Generator and a tiny step-checked task.

``ScriptedGenerator`` implements the Generator contract honestly: one token per
character, lock-step decoding of the n samples of a prompt, stop strings, EOS at
the end of a scripted text, max_tokens, per-token logprobs, a CancelToken checked
between decoding steps, on_finish called as each sample finishes, and usage that
counts the tokens of cancelled samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

import pytest

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
from testtime.tasks.base import Problem, Task, split_steps

ALL_CAPABILITIES = Capabilities()
Script = Mapping[str, Sequence[str]] | Callable[[str], Sequence[str]]


class ScriptedGenerator(Generator):
    """Sample j of a call returns the next scripted text for the prompt (cycling);
    temperature 0 always returns the first. ``logprob`` gives every token of a text
    the same log-probability (a callable of the text, or a constant)."""

    name = "scripted"

    def __init__(
        self,
        script: Script,
        *,
        logprob: float | Callable[[str], float] = -0.1,
        capabilities: Capabilities = ALL_CAPABILITIES,
        params: int = 1000,
        delay_s: float = 0.0,
    ) -> None:
        self.script = script
        self.logprob = logprob
        self.capabilities = capabilities
        self.params = params
        self.delay_s = delay_s  # per decoding step, to make concurrent requests overlap
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self._cursor: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def num_parameters(self) -> int:
        return self.params

    def count_tokens(self, text: str) -> int:
        return len(text)

    def _texts(self, prompt: str) -> Sequence[str]:
        return self.script(prompt) if callable(self.script) else self.script[prompt]

    def _next(self, prompt: str, params: SamplingParams) -> list[str]:
        texts = self._texts(prompt)
        if params.temperature == 0:
            return [texts[0]] * params.n
        with self._lock:
            start = self._cursor.get(prompt, 0)
            self._cursor[prompt] = start + params.n
        return [texts[(start + j) % len(texts)] for j in range(params.n)]

    def _target(self, text: str, params: SamplingParams) -> tuple[str, str, str | None]:
        """The text a sample would produce uncancelled, its finish reason and stop string."""
        cut, stop_string = len(text), None
        for s in params.stop:
            i = text.find(s)
            if 0 <= i < cut:
                cut, stop_string = i, s
        out, reason = text[:cut], "stop"
        if len(out) > params.max_tokens:
            out, reason, stop_string = out[: params.max_tokens], "length", None
        return out, reason, stop_string

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: CancelToken | None = None,
        on_finish: FinishCallback | None = None,
    ) -> GenerationResult:
        self.calls.append((list(prompts), params))
        usage = Usage(prompt_tokens=sum(len(p) for p in prompts), calls=1)
        out: list[list[Completion]] = []
        for pi, prompt in enumerate(prompts):
            targets = [self._target(t, params) for t in self._next(prompt, params)]
            done: list[Completion | None] = [None] * len(targets)
            step = 0
            # Lock-step decoding: one token per unfinished sample per step.
            while any(d is None for d in done):
                if cancel is not None and cancel.cancelled:
                    for j, (text, _, _) in enumerate(targets):
                        if done[j] is None:
                            done[j] = self._completion(text[:step], "cancelled", None, params)
                    break
                step += 1
                if self.delay_s:
                    time.sleep(self.delay_s)
                for j, (text, reason, stop_string) in enumerate(targets):
                    if done[j] is None and len(text) <= step:
                        done[j] = self._completion(text, reason, stop_string, params)
                        if on_finish is not None:
                            on_finish(pi, j, done[j])
            usage.completion_tokens += sum(c.num_tokens for c in done)
            out.append(done)
        return GenerationResult(out, usage)

    def _completion(
        self, text: str, reason: str, stop_string: str | None, params: SamplingParams
    ) -> Completion:
        lps = None
        if params.logprobs:
            lp = self.logprob(text) if callable(self.logprob) else self.logprob
            lps = [lp] * len(text)
        return Completion(text, reason, len(text), lps, stop_string)


class ChainTask(Task):
    """Running sums: prompt ``"sum: 2 3 4\\n"``, steps ``2+3=5``, ``5+4=9``, ``answer: 9``.

    check_steps: step i must add the i-th number to the previous result, correctly.
    """

    name = "chain"
    levels = (2, 3)

    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        problems = []
        for i in range(n):
            nums = [(seed + i + j) % 9 + 1 for j in range(difficulty)]
            prompt = "sum: " + " ".join(map(str, nums)) + "\n"
            problems.append(
                Problem(f"chain-{difficulty}-{seed}-{i}", prompt, str(sum(nums)), "chain", difficulty)
            )
        return problems

    def solve(self, problem: Problem) -> str:
        nums = [int(x) for x in problem.prompt.split()[1:]]
        lines, acc = [], nums[0]
        for x in nums[1:]:
            lines.append(f"{acc}+{x}={acc + x}")
            acc += x
        return "\n".join(lines) + f"\nanswer: {acc}\n"

    def equivalent(self, problem: Problem, answer: str) -> bool:
        return answer.strip() == problem.answer

    def check_steps(self, problem: Problem, solution: str) -> list[bool]:
        nums = [int(x) for x in problem.prompt.split()[1:]]
        acc, valid = nums[0], []
        for i, step in enumerate(split_steps(solution)):
            try:
                lhs, rhs = step.split("=")
                a, b = (int(x) for x in lhs.split("+"))
                ok = a == acc and i + 1 < len(nums) and b == nums[i + 1] and int(rhs) == a + b
                acc = int(rhs)
            except ValueError:
                ok = False
            valid.append(ok)
        return valid


@pytest.fixture
def task() -> ChainTask:
    return ChainTask()


@pytest.fixture
def problem(task: ChainTask) -> Problem:
    return task.generate(1, 3, seed=0)[0]  # sum: 1 2 3 -> 6
