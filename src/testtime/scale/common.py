"""Helpers every strategy shares: sampling into :class:`Candidate` objects with
compute accounting, verifier scoring, and answer voting.

Search and sequential strategies build on these too, so that answers are
extracted, scored, grouped and charged the same way everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from testtime.backends.base import (
    CancelToken,
    Completion,
    FinishCallback,
    Generator,
    SamplingParams,
    Usage,
)
from testtime.scale.base import Candidate, Compute
from testtime.tasks.base import Problem, Task
from testtime.verifiers.base import AGGREGATIONS, Verifier, aggregate


def derive_seed(seed: int | None, *parts: object) -> int | None:
    """A stable 31-bit seed from ``seed`` and labels (problem id, sample index...),
    identical across processes (unlike ``hash``). None stays None (unseeded)."""
    if seed is None:
        return None
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def check_aggregation(how: str) -> str:
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; valid: {', '.join(AGGREGATIONS)}")
    return how


def check_positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split integer ``total`` in proportion to ``weights`` (largest remainder), so the
    parts are integers that sum to ``total`` exactly."""
    if not weights:
        raise ValueError("nothing to apportion to")
    norm = sum(weights)
    shares = [total * w / norm for w in weights] if norm > 0 else [total / len(weights)] * len(weights)
    parts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def split_usage(usage: Usage, prompts: Sequence[str], completions: Sequence[Sequence[Completion]]) -> list[Usage]:
    """Attribute one batched call's usage to its prompts: prompt tokens in proportion
    to prompt length, completion tokens to each prompt's own samples, and each prompt
    an equal fraction of the calls (a batched call serves all its prompts: charging it
    whole to one of them left the others at 0 calls)."""
    prompt = apportion(usage.prompt_tokens, [len(p) for p in prompts])
    done = apportion(usage.completion_tokens, [sum(c.num_tokens for c in cs) for cs in completions])
    calls = [usage.calls / len(prompts)] * len(prompts)
    return [Usage(p, c, k) for p, c, k in zip(prompt, done, calls, strict=True)]


def to_candidate(completion: Completion, task: Task) -> Candidate:
    """Wrap a completion; a sample cut short by cancellation carries no answer
    (its text is a fragment, and a truncated ``answer: 1`` of ``answer: 15`` would vote)."""
    answer = None if completion.finish_reason == "cancelled" else task.extract_answer(completion.text)
    mean_lp = None
    if completion.token_logprobs is not None:  # an empty completion has probability 1
        lps = completion.token_logprobs
        mean_lp = sum(lps) / len(lps) if lps else 0.0
    return Candidate(
        text=completion.text,
        answer=answer,
        num_tokens=completion.num_tokens,
        finish_reason=completion.finish_reason,
        mean_logprob=mean_lp,
    )


def sample_candidates(
    generator: Generator,
    problem: Problem,
    task: Task,
    params: SamplingParams,
    compute: Compute,
    *,
    prefix: str = "",
    cancel: CancelToken | None = None,
    on_finish: FinishCallback | None = None,
) -> list[Candidate]:
    """Sample ``params.n`` continuations of ``problem.prompt + prefix`` and charge
    their usage (cancelled samples included) to ``compute``. Candidate texts
    include ``prefix`` so that answers and step scores see the whole solution."""
    result = generator.generate(
        [problem.prompt + prefix], params, cancel=cancel, on_finish=on_finish
    )
    compute.add_usage(result.usage, generator)
    candidates = []
    for completion in result.completions[0]:
        if prefix:
            completion = Completion(
                prefix + completion.text,
                completion.finish_reason,
                completion.num_tokens,
                completion.token_logprobs,
                completion.stop_string,
            )
        candidates.append(to_candidate(completion, task))
    return candidates


def score_candidates(
    candidates: Sequence[Candidate],
    problem: Problem,
    verifier: Verifier,
    compute: Compute,
    aggregation: str = "last",
) -> None:
    """Fill ``step_scores`` and ``score`` of every candidate with one verifier call,
    charging the verifier's tokens to ``compute``."""
    if not candidates:
        return
    scores = verifier.score(problem, [c.text for c in candidates])
    if len(scores.steps) != len(candidates):
        raise RuntimeError(
            f"verifier {verifier.name!r} returned {len(scores.steps)} scores "
            f"for {len(candidates)} solutions"
        )
    compute.add_scores(scores, verifier)
    for cand, steps in zip(candidates, scores.steps, strict=True):
        cand.step_scores = [float(s) for s in steps]
        cand.score = aggregate(cand.step_scores, aggregation)


def candidate_score(candidate: Candidate, aggregation: str) -> float:
    """The candidate's solution score under ``aggregation`` (from its step scores)."""
    if candidate.step_scores is None:
        raise ValueError("candidate has not been scored by a verifier")
    return aggregate(candidate.step_scores, aggregation)


def vote(
    candidates: Sequence[Candidate],
    problem: Problem,
    task: Task,
    weights: Sequence[float] | None = None,
) -> tuple[str | None, dict[str, float]]:
    """(Weighted) majority vote over equivalent answers (spec §1).

    Answers are grouped by ``task.answer_key``; candidates without an answer
    abstain. Returns the winning answer (the first-seen spelling of the winning
    group; ties go to the group seen first) and the tally per answer key.
    """
    if weights is not None and len(weights) != len(candidates):
        raise ValueError("one weight per candidate is needed")
    tally: dict[str, float] = {}
    spelling: dict[str, str] = {}
    for i, cand in enumerate(candidates):
        if cand.answer is None:
            continue
        key = task.answer_key(problem, cand.answer)
        spelling.setdefault(key, cand.answer)
        tally[key] = tally.get(key, 0.0) + (1.0 if weights is None else float(weights[i]))
    if not tally:
        return None, tally
    best = max(tally, key=tally.__getitem__)  # max keeps the first of equal tallies
    return spelling[best], tally


def best_scored(candidates: Sequence[Candidate], aggregation: str) -> Candidate | None:
    """The highest-scoring candidate that has an answer (first on ties), else None."""
    best: Candidate | None = None
    best_score = float("-inf")
    for cand in candidates:
        if cand.answer is None:
            continue
        s = candidate_score(cand, aggregation)
        if s > best_score:
            best, best_score = cand, s
    return best


def mark_correct(result_answer: str | None, problem: Problem, task: Task) -> bool:
    """Whether a strategy's chosen answer is right (no answer is wrong)."""
    return result_answer is not None and task.equivalent(problem, result_answer)
