"""Dynamic Cheatsheet's ``mode=examples`` memory (Suzgun et al. 2025, adapted to a
model that follows no instructions; see :mod:`testtime.learn.cheatsheet`): admitted
solutions, retrieved by the model's own hidden-state similarity and put before the
prompt as worked examples. Admission is label-free by default (the learned PRM, or
self-consistency); the oracle step checker is an explicit upper bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from testtime.learn.common import majority, vote_keys
from testtime.learn.retrieval import top_k
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier

if TYPE_CHECKING:
    from testtime.learn.cheatsheet import DCConfig


class ExampleMemory:
    """Admitted solutions retrieved by the model's own hidden-state similarity."""

    def __init__(self, policy: Any, task: Task, cfg: DCConfig, verifier: Verifier | None = None) -> None:
        """``verifier``: the step scorer of ``admit=prm`` / ``oracle`` (default: the
        shipped PRM, or the task's step checker for the oracle)."""
        from testtime.verifiers import get_verifier

        self.policy, self.task, self.cfg = policy, task, cfg
        self.checker = None
        if cfg.admit != "consistency":
            self.checker = verifier or get_verifier("oracle" if cfg.admit == "oracle" else "prm", task)
        self.memory: list[dict[str, Any]] = []

    @torch.no_grad()
    def embed(self, text: str) -> list[float]:
        """Mean of the last-layer hidden states over the text's tokens."""
        ids = torch.tensor([self.policy.encode_prompt(text)])
        return self.policy.model.transformer(input_ids=ids).last_hidden_state[0].mean(0).tolist()

    def admitted(self, problem: Problem, texts: Sequence[str]) -> str | None:
        """The sample the memory admits (see the module docstring), or None."""
        answered = [t for t in texts if self.task.extract_answer(t) is not None]
        if not answered:
            return None
        threshold = self.cfg.admit_threshold
        if self.checker is None:  # self-consistency
            keys = vote_keys(self.task, problem, texts)
            key, share = majority(keys)
            if key is None or share < threshold:
                return None
            return next(t for t, k in zip(texts, keys, strict=True) if k == key)
        scores = self.checker.score(problem, answered).steps
        ok = [(min(s), t) for s, t in zip(scores, answered, strict=True) if s and min(s) >= threshold]
        return max(ok, key=lambda x: x[0])[1] if ok else None

    def _answer(self, prompt: str, problem: Problem, tag: str) -> tuple[str | None, list[str], int]:
        cfg = self.cfg
        rows, usage = self.policy.rollouts(
            [self.policy.encode_prompt(prompt)], cfg.samples, temperature=cfg.temperature,
            max_tokens=cfg.max_tokens, seed=derive_seed(cfg.seed, tag, problem.id),
        )
        texts = [r.text for r in rows[0]]
        return majority(vote_keys(self.task, problem, texts))[0], texts, usage.total_tokens

    def step(self, problem: Problem) -> dict[str, Any]:
        memory = self.memory
        embedding = self.embed(problem.prompt)
        hits = top_k(embedding, [m["embedding"] for m in memory], self.cfg.examples)
        context = "".join(memory[i]["prompt"] + memory[i]["solution"] for i in hits)
        base, _, base_tokens = self._answer(problem.prompt, problem, "base")
        key, texts, tokens = self._answer(context + problem.prompt, problem, "memory")
        added = None
        text = self.admitted(problem, texts)
        if text is not None:
            solution = text if text.endswith("\n") else text + "\n"
            added = {"prompt": problem.prompt, "solution": solution, "embedding": embedding}
        outcome = {"answer": key, "base_answer": base, "retrieved": len(hits), "tokens": tokens,
                   "base_tokens": base_tokens, "added": added}
        self.replay(outcome)
        return outcome

    def replay(self, outcome: dict[str, Any]) -> None:
        if outcome["added"] is not None:
            self.memory.append(outcome["added"])
            del self.memory[: max(0, len(self.memory) - self.cfg.max_memory)]

    def summary(self) -> dict[str, Any]:
        return {"memory_size": len(self.memory)}
