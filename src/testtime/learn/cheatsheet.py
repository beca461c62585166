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
* ``mode=examples`` (:mod:`testtime.learn.cheatsheet_examples`) — for the embedded
  TinyReasoner, which follows no instructions: the memory holds *admitted* solutions, retrieved by cosine
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

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from testtime.backends.base import Generator, SamplingParams
from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.cheatsheet_examples import ExampleMemory
from testtime.learn.common import (
    RunDir,
    key_correct,
    majority,
    progress_bar,
    require_answers,
    vote_keys,
)
from testtime.learn.retrieval import hashed_trigrams, top_k
from testtime.scale.common import derive_seed
from testtime.tasks.base import Problem, Task

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
    generator = None
    if cfg.mode == "curator":  # built first: bad backend options fail before DIR exists
        from testtime.backends import get_generator

        generator = get_generator(cfg.backend or str(request.model_dir), **request.backend_options)
    elif request.backend_options:
        raise ValueError(
            "dynamic-cheatsheet mode=examples samples its own policy in-process; "
            "backend options apply to mode=curator"
        )
    run = RunDir(request.out, request.run_config(cfg), request.model_dir)
    try:
        loop: ExampleMemory | CuratorLoop
        if cfg.mode == "examples":
            from testtime.learn.policy import Policy

            loop = ExampleMemory(Policy(request.model_dir), task, cfg)
        else:
            loop = CuratorLoop(generator, task, cfg)
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
