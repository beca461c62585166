"""LLM-as-judge verifier with test-time scaling of the judge (after J1, Whitehouse
et al., 2025; spec §11).

The judge is any :class:`~testtime.backends.base.Generator` (typically an
instruction-following model behind ``openai:<url>``). Scaling the judge means
sampling ``judgments`` verdicts per question and aggregating them:

- ``pointwise``: each judgment ends ``score: N`` (0-10); the solution's score is
  the mean over the parsed judgments, divided by 10.
- ``pairwise``: every pair of solutions is judged in *both* orders (removing
  position bias); ``verdict: A`` / ``verdict: B`` votes are pooled over both
  orders and the majority wins the pair (a tie is half a win). A solution's
  score is its fraction of pairs won.

Judgments that do not parse abstain; a question with no parsable judgment
scores 0.5 (no information). The judge's prompt and generated tokens are
charged as verifier tokens. Pairwise scores are relative to the set judged
(``relative``): k solutions cost k(k − 1) judge prompts, and the scaling harness
scores each budget's own candidates rather than one shared pool.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from testtime.backends.base import Generator, SamplingParams, Usage
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import VERIFIERS, Scores, Verifier

MODES = ("pointwise", "pairwise")

POINTWISE_PROMPT = """You are a strict grader of math solutions. Check the solution step by step, \
then end your judgment with a line "score: N", where N is an integer from 0 (certainly wrong) \
to 10 (certainly correct).

Problem:
{problem}
Solution:
{solution}
Judgment:
"""

PAIRWISE_PROMPT = """You are a strict grader of math solutions. Compare the two responses \
step by step, then end your judgment with a line "verdict: A" or "verdict: B" naming the \
better (correct) response.

Problem:
{problem}
Response A:
{a}
Response B:
{b}
Judgment:
"""

_SCORE_RE = re.compile(r"score\s*:\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_VERDICT_RE = re.compile(r"verdict\s*:\s*[\[\*\s]*([AB])\b", re.IGNORECASE)


def parse_score(judgment: str) -> float | None:
    """The last ``score: N`` in a judgment, clamped to 0..10, as a fraction; None if absent."""
    found = _SCORE_RE.findall(judgment)
    if not found:
        return None
    return min(max(float(found[-1]), 0.0), 10.0) / 10.0


def parse_verdict(judgment: str) -> str | None:
    """The last ``verdict: A|B`` in a judgment, or None."""
    found = _VERDICT_RE.findall(judgment)
    return found[-1].upper() if found else None


@VERIFIERS.register("judge")
class JudgeVerifier(Verifier):
    name = "judge"
    process = False

    def __init__(
        self,
        task: Task | None = None,
        generator: Generator | str | None = None,
        mode: str = "pointwise",
        judgments: int = 4,
        temperature: float = 0.7,
        max_tokens: int = 512,
        seed: int | None = 0,
        **backend_options: Any,
    ) -> None:
        """``generator``: the judge model, or a backend spec for ``get_generator``."""
        if generator is None:
            raise ValueError(
                "verifier 'judge' needs a judge model: generator=<backend spec>, e.g. openai:http://host/v1"
            )
        if isinstance(generator, str):
            from testtime.backends import get_generator

            generator = get_generator(generator, **backend_options)
        if mode not in MODES:
            raise ValueError(f"unknown judge mode {mode!r}; valid: {', '.join(MODES)}")
        if judgments <= 0:
            raise ValueError(f"judgments must be >= 1, got {judgments}")
        self.generator = generator
        self.mode = mode
        self.params = SamplingParams(
            n=judgments,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed if generator.capabilities.seed else None,
        )

    @property
    def num_parameters(self) -> int | None:
        return self.generator.num_parameters

    @property
    def relative(self) -> bool:  # type: ignore[override]
        return self.mode == "pairwise"

    def _judge(self, prompts: list[str], usage: Usage) -> list[list[str]]:
        if not prompts:
            return []
        result = self.generator.generate(prompts, self.params)
        usage += result.usage
        return [[c.text for c in row] for row in result.completions]

    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        usage = Usage()
        if self.mode == "pointwise":
            prompts = [
                POINTWISE_PROMPT.format(problem=problem.prompt.strip(), solution=s.strip())
                for s in solutions
            ]
            values = []
            for row in self._judge(prompts, usage):
                parsed = [v for v in map(parse_score, row) if v is not None]
                values.append(sum(parsed) / len(parsed) if parsed else 0.5)
        else:
            values = self._pairwise(problem, solutions, usage)
        return Scores([[v] for v in values], tokens=usage.total_tokens, calls=usage.calls)

    def _pairwise(self, problem: Problem, solutions: Sequence[str], usage: Usage) -> list[float]:
        if len(solutions) < 2:
            return [0.5] * len(solutions)  # nothing to compare against
        pairs = list(combinations(range(len(solutions)), 2))
        prompts = []
        for i, j in pairs:  # both orders of every pair
            for a, b in ((i, j), (j, i)):
                prompts.append(
                    PAIRWISE_PROMPT.format(
                        problem=problem.prompt.strip(),
                        a=solutions[a].strip(),
                        b=solutions[b].strip(),
                    )
                )
        rows = self._judge(prompts, usage)
        wins = [0.0] * len(solutions)
        for k, (i, j) in enumerate(pairs):
            for_i = for_j = 0
            for order, row in enumerate(rows[2 * k : 2 * k + 2]):
                first, second = (i, j) if order == 0 else (j, i)
                for verdict in map(parse_verdict, row):
                    winner = first if verdict == "A" else second if verdict == "B" else None
                    for_i += winner == i
                    for_j += winner == j
            wins[i] += 1.0 if for_i > for_j else 0.5 if for_i == for_j else 0.0
            wins[j] += 1.0 if for_j > for_i else 0.5 if for_i == for_j else 0.0
        return [w / (len(solutions) - 1) for w in wins]
