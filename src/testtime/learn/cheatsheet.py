"""Dynamic Cheatsheet: a memory that grows while problems are solved (Suzgun et
al. 2025, "Dynamic Cheatsheet: test-time learning with adaptive memory"; spec §8).

Two loops over a stream of problems (order matters; the memory after each
problem is stored with it, so a killed run resumes with the right memory):

* ``mode=curator`` — the paper's loop, for an instruction-following model behind
  any :class:`~testtime.backends.base.Generator`. DC-Cu (``variant=cu``): answer
  with memory M, then a curator call sees (question, answer, M), judges the
  answer, and rewrites M (kept only if its output parses). DC-RS
  (``variant=rs``): first retrieve the 3 most similar past (question, answer)
  pairs by embedding cosine, let the curator synthesise M from them, then answer.
* ``mode=examples`` — for the embedded TinyReasoner, which follows no
  instructions: the memory holds *admitted* solutions, retrieved by cosine
  similarity of the model's own mean last-layer hidden states, and put before
  the prompt as worked examples. The no-memory answer is recorded beside it, so
  the run measures whether the model can use in-context examples at all.

Admission (``admit``) plays the paper's curator judging an answer, label-free by
default: ``prm`` admits the best sample whose every step the learned PRM scores
>= ``admit_threshold``; ``consistency`` admits a sample of the majority answer
when it holds >= ``admit_threshold`` of ``samples`` (>= 2) votes; ``oracle``
admits only solutions the task's step checker passes — gold step labels, an
upper bound reported as ``labels: oracle-verifier``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from testtime.backends.base import Generator, SamplingParams
from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import (
    RunDir,
    key_correct,
    majority,
    progress_bar,
    require_answers,
    vote_keys,
)
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier

MODES = ("examples", "curator")
VARIANTS = ("cu", "rs")
ADMISSIONS = ("prm", "consistency", "oracle")
RETRIEVE = 3

GENERATOR_PROMPT = """You solve problems. A cheatsheet of insights from earlier problems follows.
<cheatsheet>
{memory}
</cheatsheet>
Question: {question}
Solve it step by step, one step per line, and end with a line 'answer: <value>'.
"""

CURATOR_PROMPT = """You maintain a cheatsheet of short, reusable problem-solving insights.
Current cheatsheet:
<cheatsheet>
{memory}
</cheatsheet>
{evidence}
Judge whether the answers above are correct. Keep the insights that help, merge duplicates,
drop wrong or useless ones, and add new reusable strategies or verified solution patterns.
Reply with the complete new cheatsheet between <cheatsheet> and </cheatsheet>.
"""

_CHEATSHEET_RE = re.compile(r"<cheatsheet>(.*?)</cheatsheet>", re.DOTALL)


def parse_cheatsheet(text: str) -> str | None:
    """The curator's new memory (the last tagged block), or None when it does not parse."""
    blocks = _CHEATSHEET_RE.findall(text)
    return blocks[-1].strip() if blocks else None


def hashed_trigrams(text: str, dim: int = 512) -> list[float]:
    """A deterministic bag of character trigrams, hashed to ``dim`` buckets, L2-normed:
    the retrieval embedding when no embedding model is given."""
    vec = [0.0] * dim
    padded = f"  {text.lower()}  "
    for i in range(len(padded) - 2):
        h = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "big")
        vec[h % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def top_k(query: Sequence[float], keys: Sequence[Sequence[float]], k: int) -> list[int]:
    """Indices of the ``k`` keys most cosine-similar to ``query`` (best first)."""
    if not keys:
        return []
    q = torch.tensor(query, dtype=torch.float32)
    m = torch.tensor(keys, dtype=torch.float32)
    sims = (m @ q) / (m.norm(dim=1) * q.norm()).clamp_min(1e-12)
    return torch.topk(sims, min(k, len(keys))).indices.tolist()


@dataclass
class DCConfig:
    mode: str = "examples"
    variant: str = "cu"
    backend: str | None = None  # generator spec for mode=curator (default: the model)
    examples: int = 2  # retrieved verified solutions per prompt (mode=examples)
    samples: int = 1  # samples per answer (majority; 1 = one sample)
    temperature: float = 0.0
    max_tokens: int = 192
    curator_tokens: int = 512
    max_memory: int = 200  # admitted solutions kept (mode=examples)
    admit: str = "prm"  # mode=examples: "prm" | "consistency" (label-free) | "oracle" (upper bound)
    admit_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.samples < 1 or self.examples < 0 or self.max_memory < 1:
            raise ValueError("need samples >= 1, examples >= 0 and max_memory >= 1")
        if self.admit not in ADMISSIONS:
            raise ValueError(f"admit must be one of {', '.join(ADMISSIONS)}, got {self.admit!r}")
        if self.admit == "consistency" and self.mode == "examples" and self.samples < 2:
            raise ValueError("admit=consistency needs samples >= 2 to measure agreement")

    @property
    def labels(self) -> str:
        return "oracle-verifier" if self.mode == "examples" and self.admit == "oracle" else "none"


@dataclass
class CuratorState:
    memory: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # past {question, answer, embedding}


class CuratorLoop:
    """DC-Cu / DC-RS over any generator."""

    def __init__(
        self,
        generator: Generator,
        task: Task,
        cfg: DCConfig,
        embed: Callable[[str], list[float]] = hashed_trigrams,
    ) -> None:
        self.generator, self.task, self.cfg, self.embed = generator, task, cfg, embed
        self.state = CuratorState()

    def _call(self, prompt: str, max_tokens: int, seed_tag: str, n: int = 1) -> tuple[list[str], int]:
        cfg = self.cfg
        params = SamplingParams(
            n=n, temperature=cfg.temperature, max_tokens=max_tokens, seed=derive_seed(cfg.seed, seed_tag)
        )
        result = self.generator.generate([prompt], params)
        return [c.text for c in result.completions[0]], result.usage.total_tokens

    def _curate(self, state: CuratorState, evidence: str, tag: str) -> tuple[bool, int]:
        prompt = CURATOR_PROMPT.format(memory=state.memory, evidence=evidence)
        (text,), tokens = self._call(prompt, self.cfg.curator_tokens, tag)
        new = parse_cheatsheet(text)
        if new is not None:
            state.memory = new
        return new is not None, tokens

    def step(self, problem: Problem) -> dict[str, Any]:
        """Answer ``problem`` and update the memory; returns what happened (and the new
        memory, so that :meth:`replay` can restore it on resume)."""
        cfg, state, tokens, parsed = self.cfg, self.state, 0, True
        question = problem.prompt.strip()
        embedding = self.embed(question)
        if cfg.variant == "rs":
            hits = top_k(embedding, [h["embedding"] for h in state.history], RETRIEVE)
            pairs = "".join(
                f"Past question: {state.history[i]['question']}\nPast answer: {state.history[i]['answer']}\n"
                for i in hits
            )
            parsed, tokens = self._curate(state, f"{pairs}Next question: {question}\n", f"rs/{problem.id}")
        answers, used = self._call(
            GENERATOR_PROMPT.format(memory=state.memory, question=question),
            cfg.max_tokens, f"answer/{problem.id}", cfg.samples,
        )
        tokens += used
        key = majority(vote_keys(self.task, problem, answers))[0]
        if cfg.variant == "cu":
            evidence = f"Question: {question}\nModel's answer:\n{answers[0]}\n"
            parsed, used = self._curate(state, evidence, f"cu/{problem.id}")
            tokens += used
        item = {"question": question, "answer": answers[0], "embedding": embedding}
        state.history.append(item)
        return {"answer": key, "memory_parsed": parsed, "tokens": tokens, "memory": state.memory,
                "history_item": item}

    def replay(self, outcome: dict[str, Any]) -> None:
        self.state.memory = outcome["memory"]
        self.state.history.append(outcome["history_item"])

    def summary(self) -> dict[str, Any]:
        return {"memory": self.state.memory}


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


@METHODS.register("dynamic-cheatsheet")
@takes_options(DCConfig)
def dynamic_cheatsheet(request: LearnRequest) -> dict[str, Any]:
    cfg = build_config(DCConfig, {"seed": request.seed}, request.options, "dynamic-cheatsheet")
    task = request.task
    require_answers(task, request.problems, "dynamic-cheatsheet")
    if cfg.mode == "examples" and cfg.admit == "oracle" and not task.has_step_checker:
        raise ValueError(
            f"dynamic-cheatsheet admit=oracle admits solutions verified by a step checker; "
            f"task {task.name!r} has none (use admit=prm or admit=consistency)"
        )
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    try:
        loop: ExampleMemory | CuratorLoop
        if cfg.mode == "examples":
            from testtime.learn.policy import Policy

            loop = ExampleMemory(Policy(request.model_dir), task, cfg)
        else:
            from testtime.backends import get_generator

            loop = CuratorLoop(get_generator(cfg.backend or str(request.model_dir)), task, cfg)
        results = []
        with progress_bar("dynamic-cheatsheet", len(request.problems), enabled=request.show_progress) as bar:
            for i, problem in enumerate(request.problems):
                key = f"{i:06d}/{problem.id}"  # order matters: the memory evolves
                outcome = run.store.get(key)
                if outcome is None:
                    outcome = loop.step(problem)
                    outcome["correct"] = key_correct(task, problem, outcome["answer"])
                    if "base_answer" in outcome:
                        outcome["base_correct"] = key_correct(task, problem, outcome["base_answer"])
                    run.store.put(key, outcome)
                else:
                    loop.replay(outcome)
                results.append(outcome)
                bar.advance()
        n = len(results)
        summary: dict[str, Any] = {
            "config": asdict(cfg),
            "labels": cfg.labels,
            "problems": n,
            "after": {"accuracy": sum(r["correct"] for r in results) / n},
            "mean_tokens": sum(r["tokens"] for r in results) / n,
            **loop.summary(),
        }
        if cfg.mode == "examples":
            summary["before"] = {"accuracy": sum(r["base_correct"] for r in results) / n}
        else:
            summary["memory_parse_rate"] = sum(r["memory_parsed"] for r in results) / n
        return run.finish(summary)
    finally:
        run.close()
