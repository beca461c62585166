"""R2-MCTS: retrieval-augmented MCTS over steps (after R2-LLMs, spec §11).

A :class:`SolutionBank` holds verified (prompt, solution) pairs. For each
problem the most similar solved problems are retrieved (cosine similarity of
character-trigram counts: no embedding model needed for the embedded tasks) and
placed before the prompt as worked examples, so every MCTS expansion is
conditioned on analogous steps; the PRM values nodes as in plain MCTS. A
solution the PRM scores at least ``accept`` joins the bank (online growth), and
the bank is saved atomically when it has a path.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, ProblemResult
from testtime.scale.mcts import MCTS
from testtime.store.atomic import atomic_write_json
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


def _ngrams(text: str, n: int = 3) -> Counter[str]:
    text = f" {text.strip()} "
    return Counter(text[i : i + n] for i in range(max(len(text) - n + 1, 1)))


def cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


class SolutionBank:
    """Verified worked examples, retrieved by prompt similarity."""

    def __init__(self, entries: list[tuple[str, str]] | None = None) -> None:
        self.entries: list[tuple[str, str]] = []
        self._features: list[Counter[str]] = []
        for prompt, solution in entries or []:
            self.add(prompt, solution)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, prompt: str, solution: str) -> None:
        if (prompt, solution) in self.entries:
            return
        self.entries.append((prompt, solution))
        self._features.append(_ngrams(prompt))

    def retrieve(self, prompt: str, k: int) -> list[tuple[str, str, float]]:
        """The ``k`` most similar entries (prompt, solution, similarity), best first;
        the prompt itself is never retrieved (no answer leakage)."""
        query = _ngrams(prompt)
        scored = [
            (p, s, cosine(query, f))
            for (p, s), f in zip(self.entries, self._features, strict=True)
            if p != prompt
        ]
        scored.sort(key=lambda e: e[2], reverse=True)
        return scored[:k]

    def save(self, path: str | Path) -> None:
        atomic_write_json(Path(path), [{"prompt": p, "solution": s} for p, s in self.entries])

    @classmethod
    def load(cls, path: str | Path) -> SolutionBank:
        path = Path(path)
        try:
            rows = json.loads(path.read_text())
            return cls([(r["prompt"], r["solution"]) for r in rows])
        except (json.JSONDecodeError, TypeError, KeyError) as err:
            raise ValueError(
                f"{path} is not a solution bank (a JSON list of prompt/solution): {err}"
            ) from None


@STRATEGIES.register("r2-mcts")
class R2MCTS(MCTS):
    name = "r2-mcts"

    def __init__(
        self,
        n: int = 16,
        examples: int = 2,
        bank: str | SolutionBank | None = None,
        accept: float = 0.9,
        branching: int = 3,
        c_uct: float = 1.0,
        max_steps: int = 40,
        temperature: float = 0.8,
        step_tokens: int = 64,
        max_tokens: int = 256,
        aggregation: str = "last",
        select: str = "score",
        seed: int | None = 0,
    ) -> None:
        """``bank``: a SolutionBank, or the path of a saved one (created when absent);
        ``examples`` retrieved per problem; a solution scored >= ``accept`` is banked."""
        super().__init__(
            n,
            branching,
            c_uct,
            max_steps,
            temperature,
            step_tokens,
            max_tokens,
            aggregation,
            select,
            seed,
        )
        if examples < 0:
            raise ValueError(f"examples must be >= 0, got {examples}")
        self.examples = examples
        self.accept = accept
        self.bank_path: Path | None = None
        if isinstance(bank, SolutionBank):
            self.bank = bank
        else:
            self.bank_path = Path(bank) if bank is not None else None
            exists = self.bank_path is not None and self.bank_path.exists()
            self.bank = SolutionBank.load(self.bank_path) if exists else SolutionBank()

    def context(self, problem: Problem) -> tuple[str, dict]:
        hits = self.bank.retrieve(problem.prompt, self.examples)
        text = "".join(p + s for p, s, _ in hits)
        return text, {
            "retrieved": [{"prompt": p, "similarity": round(sim, 4)} for p, _, sim in hits]
        }

    def solve_one(
        self, problem: Problem, generator: Generator, task: Task, verifier: Verifier | None
    ) -> ProblemResult:
        result = super().solve_one(problem, generator, task, verifier)
        best = max(result.candidates, key=lambda c: c.score or 0.0, default=None)
        if best is not None and best.answer is not None and (best.score or 0.0) >= self.accept:
            self.bank.add(problem.prompt, best.text)
            result.meta["banked"] = True
            if self.bank_path is not None:
                self.bank.save(self.bank_path)
        return result
