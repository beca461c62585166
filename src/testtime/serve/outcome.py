"""A request's outcome: the choice returned per run, and the usage of all its work.

``usage`` counts every token spent on the request: all candidates' prompt and
completion tokens, and the verifier's tokens (in ``prompt_tokens``), plus a
``testtime`` object with the strategy, its options, the compute breakdown, the
candidate counts and the answer votes per run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from testtime.scale.base import Candidate, Compute, ProblemResult, Strategy
from testtime.serve.routing import Plan
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import Verifier


@dataclass
class Choice:
    text: str
    finish_reason: str  # "stop" or "length"


@dataclass
class Outcome:
    choices: list[Choice]
    usage: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def chosen_candidate(result: ProblemResult, problem: Problem, task: Task) -> Candidate | None:
    """The candidate whose text answers the request: the strategy's ``winner`` when it
    names one (ffs), else the best-scored (first on ties) candidate with the chosen answer."""
    winner = result.meta.get("winner")
    if isinstance(winner, int) and 0 <= winner < len(result.candidates):
        return result.candidates[winner]
    if result.answer is not None:
        key = task.answer_key(problem, result.answer)
        matching = [
            c
            for c in result.candidates
            if c.answer is not None and task.answer_key(problem, c.answer) == key
        ]
        if matching:
            return max(matching, key=lambda c: -float("inf") if c.score is None else c.score)
    return result.candidates[0] if result.candidates else None


def answer_votes(result: ProblemResult, problem: Problem, task: Task) -> dict[str, int]:
    """How many candidates reached each answer (grouped by the task's answer key)."""
    votes: dict[str, int] = {}
    for cand in result.candidates:
        if cand.answer is not None:
            key = task.answer_key(problem, cand.answer)
            votes[key] = votes.get(key, 0) + 1
    return votes



def build_outcome(
    plan: Plan,
    strategy: Strategy,
    verifier: Verifier | None,
    task: Task,
    problems: list[Problem],
    results: list[ProblemResult],
) -> Outcome:
    """The response's choices and usage (with the ``testtime`` breakdown) of ``results``."""
    choices, details = [], []
    for problem, result in zip(problems, results, strict=True):
        cand = chosen_candidate(result, problem, task)
        reason = "length" if cand is not None and cand.finish_reason == "length" else "stop"
        choices.append(Choice("" if cand is None else cand.text, reason))
        details.append(
            {
                "answer": result.answer,
                "candidates": len(result.candidates),
                "votes": answer_votes(result, problem, task),
                "compute": result.compute.to_dict(),
                "meta": _jsonable(result.meta),
            }
        )
    total = reduce(Compute.__add__, (r.compute for r in results), Compute())
    # Verifier tokens are tokens processed on the request's behalf, like prompt
    # tokens; they are counted there so prompt + completion covers everything.
    prompt_tokens = total.prompt_tokens + total.verifier_tokens
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": total.generated_tokens,
        "total_tokens": prompt_tokens + total.generated_tokens,
        "testtime": {
            "strategy": strategy.name,
            "options": _jsonable(plan.options),
            "verifier": None if verifier is None else verifier.name,
            "task": task.name,
            "candidates": sum(d["candidates"] for d in details),
            "compute": total.to_dict(),
            "results": details,
        },
    }
    return Outcome(choices, usage)
