"""A language-model-free proposal distribution: perturb the float literals of the
current program (Gaussian steps at a random scale). It is the random-mutation baseline
of program search (no learning, no reading of scores) and the scripted generator the
tests use; any :class:`~testtime.backends.base.Generator` can take its place."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

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
from testtime.programs.prompt import parent_code

FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])")
SCALES = (1e-3, 1e-2, 1e-1)


def mutate(code: str, rng: random.Random, max_changes: int = 4) -> str:
    """``code`` with 1..max_changes of its float literals moved by a Gaussian step."""
    spans = [m.span() for m in FLOAT.finditer(code)]
    if not spans:
        return code
    scale = rng.choice(SCALES)
    chosen = sorted(rng.sample(spans, min(len(spans), rng.randint(1, max_changes))), reverse=True)
    for start, end in chosen:
        value = float(code[start:end]) + rng.gauss(0.0, scale)
        code = code[:start] + f"{value:.6f}" + code[end:]
    return code


class MutationGenerator(Generator):
    name = "mutate"
    capabilities = Capabilities(logprobs=False, continuation=True, cancellation=False, seed=True)

    def __init__(self, max_changes: int = 4) -> None:
        if max_changes < 1:
            raise ValueError(f"max_changes must be >= 1, got {max_changes}")
        self.max_changes = max_changes

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 cancel: CancelToken | None = None,
                 on_finish: FinishCallback | None = None) -> GenerationResult:
        rng = random.Random(params.seed)
        out: list[list[Completion]] = []
        for i, prompt in enumerate(prompts):
            code = parent_code(prompt)
            if code is None:
                raise ValueError("the prompt shows no current program to mutate")
            row = []
            for j in range(params.n):
                text = f"```python\n{mutate(code, rng, self.max_changes)}```"
                row.append(Completion(text=text, finish_reason="stop", num_tokens=0))
                if on_finish is not None:
                    on_finish(i, j, row[-1])
            out.append(row)
        return GenerationResult(out, Usage(calls=1))
