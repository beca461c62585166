"""R2-MCTS: hierarchical retrieval-augmented MCTS over steps (Dou et al. 2025,
"Enhancing test-time scaling of LLMs with hierarchical retrieval-augmented MCTS"
(R2-LLMs); spec §11).

A :class:`SolutionBank` holds verified (prompt, solution) pairs and indexes
their steps. Two levels of retrieval (cosine similarity of character-trigram
counts: no embedding model needed for the embedded tasks):

- coarse, per problem: the ``examples`` most similar solved problems, placed
  before the prompt as worked examples;
- fine, per expansion: the banked solutions holding the ``step_examples`` steps
  most similar to the node's last step, added to that node's context, so every
  expansion is conditioned on analogous intermediate steps.

Retrieval-augmented PRM (``augment_prm``): nodes are valued by the verifier
reading the same retrieved context before the prompt. A solution the verifier
scores at least ``accept`` joins the bank (online growth); the bank is saved
atomically when it has a path. Deviations: the paper retrieves from a reference
dataset with an embedding model and abstracts problem templates; here the bank
grows from the run's own accepted solutions, and the oracle verifier (which
checks the problem's own steps) is never augmented.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from testtime.backends.base import Generator
from testtime.scale.base import STRATEGIES, Candidate, Compute, ProblemResult
from testtime.scale.common import score_candidates
from testtime.scale.mcts import MCTS
from testtime.scale.stepwise import StepExpander
from testtime.store.atomic import atomic_write_json
from testtime.tasks.base import Problem, Task, split_steps
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
        self._steps: list[tuple[int, Counter[str]]] = []  # (entry index, step features)
        for prompt, solution in entries or []:
            self.add(prompt, solution)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, prompt: str, solution: str) -> None:
        if (prompt, solution) in self.entries:
            return
        self.entries.append((prompt, solution))
        self._features.append(_ngrams(prompt))
        self._steps += [(len(self.entries) - 1, _ngrams(step)) for step in split_steps(solution)]

    def retrieve_steps(self, step: str, k: int, exclude: str) -> list[tuple[str, str, float]]:
        """The entries (prompt, solution, similarity) holding the ``k`` steps most similar
        to ``step``, best first, one per entry; never an entry of prompt ``exclude``."""
        query = _ngrams(step)
        best: dict[int, float] = {}
        for i, feats in self._steps:
            if self.entries[i][0] != exclude:
                best[i] = max(best.get(i, 0.0), cosine(query, feats))
        ranked = sorted(best, key=lambda i: best[i], reverse=True)[:k]
        return [(*self.entries[i], best[i]) for i in ranked]

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
        step_examples: int = 1,
        augment_prm: bool = True,
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
        ``examples`` retrieved per problem, ``step_examples`` per expansion (by its last
        step); ``augment_prm``: the verifier reads the retrieved context too; a solution
        scored >= ``accept`` is banked."""
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
        if examples < 0 or step_examples < 0:
            raise ValueError(f"examples and step_examples must be >= 0, got {examples}, {step_examples}")
        self.examples, self.step_examples, self.augment_prm = examples, step_examples, augment_prm
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

    def expander(
        self, problem: Problem, task: Task, generator: Generator, verifier: Verifier | None,
        compute: Compute, context: str = "",
    ) -> StepExpander:
        assert verifier is not None  # check() refused a missing verifier
        return RetrievalExpander(
            problem, task, generator, verifier, compute, step_tokens=self.step_tokens,
            max_tokens=self.max_tokens, aggregation=self.aggregation, seed=self.seed,
            context=context, bank=self.bank, step_examples=self.step_examples,
            augment=self.augment_prm and not verifier.reads_labels,
        )

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


class RetrievalExpander(StepExpander):
    """Step expansion whose context adds, per path, the banked solutions holding the
    steps most similar to the path's last step; with ``augment`` the verifier scores
    each path with that context before the prompt (a retrieval-augmented PRM)."""

    def __init__(self, *args, bank: SolutionBank, step_examples: int, augment: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bank, self.step_examples, self.augment = bank, step_examples, augment

    def context_for(self, path: Candidate) -> str:
        steps = split_steps(path.text)
        if not steps or not self.step_examples:
            return self.context
        hits = self.bank.retrieve_steps(steps[-1], self.step_examples, exclude=self.problem.prompt)
        extra = "".join(p + s for p, s, _ in hits if p + s not in self.context)
        return extra + self.context

    def score(self, paths: Sequence[Candidate]) -> None:
        if not self.augment:
            return super().score(paths)
        by_context: dict[str, list[Candidate]] = {}
        for path in paths:
            by_context.setdefault(self.context_for(path), []).append(path)
        for context, group in by_context.items():
            # no answer or difficulty: a learned verifier reads the text only
            problem = Problem(self.problem.id, context + self.problem.prompt, "", self.problem.task)
            score_candidates(group, problem, self.verifier, self.compute, self.aggregation)
