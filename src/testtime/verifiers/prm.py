"""The learned process reward model (PRM) shipped with testtime.

A small GPT-2 with a one-logit token-classification head reads
``<bos> prompt solution`` and scores the newline that ends each step: the
probability that every step so far is valid (Lightman et al. 2023, "Let's
verify step by step"; the labels of Snell et al. 2024). A complete solution's
answer line is scored too, as the probability that the final answer is
correct, so with the "last" aggregation the PRM doubles as an outcome model.
Trained on TinyReasoner's own samples labelled by the task step checkers
(``testtime zoo train prm``, :mod:`testtime.zoo.reasoner_prm`).

Served by :class:`~testtime.backends.lean_scorer.TokenScorer` with prefix reuse: a
search's partial solution scored at one step is not re-read at the next, and the
candidates of one call share their prompt's computation (``Scores.cached_tokens``
counts what was reused; ``prefix_cache_mb=0`` turns it off).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from testtime.backends.lean_scorer import TokenScorer
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import VERIFIERS, Scores, Verifier
from testtime.zoo.prm_format import scored_positions


def prm_path() -> Path:
    from testtime.zoo import WEIGHTS_DIR

    return WEIGHTS_DIR / "prm"


@VERIFIERS.register("prm")
class LearnedPRM(Verifier):
    name = "prm"
    process = True

    def __init__(
        self,
        task: Task | None = None,
        path: str | Path | None = None,
        batch_size: int = 64,
        prefix_cache_mb: float = 64.0,
    ) -> None:
        from transformers import AutoTokenizer

        path = Path(path) if path is not None else prm_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no PRM weights at {path}; train them with `testtime zoo train prm`"
            )
        self.scorer = TokenScorer.from_pretrained(
            path, batch_size=batch_size, prefix_cache_mb=prefix_cache_mb
        )
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))

    @property
    def num_parameters(self) -> int:
        return self.scorer.num_parameters

    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        scores, tokens, computed = self.score_pairs_computed([(problem.prompt, s) for s in solutions])
        return Scores(steps=scores, tokens=tokens, calls=1, cached_tokens=tokens - computed)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[float]], int]:
        """Per-step scores in [0, 1] of (prompt, solution) pairs, and tokens read."""
        scores, tokens, _ = self.score_pairs_computed(pairs)
        return scores, tokens

    def score_pairs_computed(
        self, pairs: Sequence[tuple[str, str]]
    ) -> tuple[list[list[float]], int, int]:
        """As :meth:`score_pairs`, plus the tokens really computed (cache hits excluded)."""
        ids, positions = [], []
        for prompt, solution in pairs:
            text, pos = scored_positions(len(prompt) + 1, solution)
            ids.append(self.tokenizer(prompt + text).input_ids)
            positions.append(pos)
        probs, computed = self.scorer.score(ids)
        steps = [row[pos].tolist() for row, pos in zip(probs, positions, strict=True)]
        return steps, sum(map(len, ids)), computed


@VERIFIERS.register("orm")
class LearnedORM(LearnedPRM):
    """The same model as an outcome verifier: one score per solution, the last
    scored line's (the answer line's for a complete solution)."""

    name = "orm"
    process = False

    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        scores = super().score(problem, solutions)
        scores.steps = [s[-1:] for s in scores.steps]
        return scores
