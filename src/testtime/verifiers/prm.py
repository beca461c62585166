"""The learned process reward model (PRM) shipped with testtime.

A small GPT-2 with a one-logit token-classification head reads
``<bos> prompt solution`` and scores the newline that ends each step: the
probability that every step so far is valid (Lightman et al. 2023, "Let's
verify step by step"; the labels of Snell et al. 2024). A complete solution's
answer line is scored too, as the probability that the final answer is
correct, so with the "last" aggregation the PRM doubles as an outcome model.
Trained on TinyReasoner's own samples labelled by the task step checkers
(``testtime zoo train prm``, :mod:`testtime.zoo.reasoner_prm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

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

    def __init__(self, task: Task | None = None, path: str | Path | None = None, batch_size: int = 64) -> None:
        from transformers import AutoTokenizer, GPT2ForTokenClassification

        path = Path(path) if path is not None else prm_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no PRM weights at {path}; train them with `testtime zoo train prm`"
            )
        self.model = GPT2ForTokenClassification.from_pretrained(str(path)).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.batch_size = batch_size

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def score(self, problem: Problem, solutions: Sequence[str]) -> Scores:
        scores, tokens = self.score_pairs([(problem.prompt, s) for s in solutions])
        return Scores(steps=scores, tokens=tokens, calls=1)

    @torch.inference_mode()
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[float]], int]:
        """Per-step scores in [0, 1] of (prompt, solution) pairs, and tokens read."""
        out: list[list[float]] = []
        tokens = 0
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            texts, positions = [], []
            for prompt, solution in chunk:
                text, pos = scored_positions(len(prompt) + 1, solution)
                texts.append(prompt + text)
                positions.append(pos)
            ids = [self.tokenizer(t).input_ids for t in texts]
            tokens += sum(map(len, ids))
            width = max(map(len, ids))
            pad = self.tokenizer.pad_token_id
            batch = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
            probs = torch.sigmoid(self.model(input_ids=batch, attention_mask=mask).logits[..., 0])
            out += [probs[r, pos].tolist() for r, pos in enumerate(positions)]
        return out, tokens


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
