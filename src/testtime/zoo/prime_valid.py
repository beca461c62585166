"""Validation of a primed model (``testtime zoo prime``): pass@1 per (behaviour, level)
on arith problems of the validation seed only, so checkpoint selection never sees the
held-out test seed.

Each entry's prompt is the context a behaviour trace (:mod:`testtime.zoo.behaviours`)
puts before its first trained segment: the bare prompt for ``plain``, prompt + attempt
+ ``wait`` for ``wait`` (right 80% of the time: the review must keep it, or fix it),
the solved examples + prompt for ``incontext``; the model's continuation must reach
the right answer. Selection prefers a checkpoint whose plain pass@1 (the first entry)
lies inside the window, then the highest mean over the entries, so priming cannot
buy a new skill with the plain one.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from testtime.tasks import get_task
from testtime.zoo.behaviours import make_trace
from testtime.zoo.reasoner_data import VALID_SEED
from testtime.zoo.reasoner_sampling import sample

# (behaviour, arith level): plain solving at the mid and a hard level, the two contracts.
VALID = (("plain", 6), ("plain", 10), ("wait", 6), ("incontext", 6))


def key(behaviour: str, level: int) -> str:
    return f"{behaviour}@{level}"


def context(segments: list[tuple[str, bool]], prompt: str) -> str:
    """What the model is given: the text up to the first trained segment after the
    problem's own ``prompt`` (solved examples before it are context)."""
    out, seen = [], False
    for text, trained in segments:
        if seen and trained:
            break
        out.append(text)
        seen = seen or text == prompt
    return "".join(out)


def validate_behaviours(
    model: Any, tokenizer: Any, valid: tuple[tuple[str, int], ...], problems: int, samples: int, seed: int,
    max_new_tokens: int,
) -> dict[str, float]:
    """pass@1 at temperature 1 for each (behaviour, level) in ``valid``."""
    task = get_task("arith")
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    scores = {}
    for behaviour, level in valid:
        items = task.generate(problems, level, seed=VALID_SEED)
        rng = random.Random(f"valid-{behaviour}-{level}")
        prompts = [context(make_trace(task, p, behaviour, rng).segments, p.prompt) for p in items]
        outs = sample(model, tokenizer, prompts, n=samples, generator=generator, max_new_tokens=max_new_tokens)
        right = sum(task.is_correct(p, s) for p, group in zip(items, outs, strict=True) for s in group)
        scores[key(behaviour, level)] = right / (problems * samples)
    model.train()
    return scores


def preference(scores: dict[str, float], window: tuple[float, float]) -> tuple[bool, float]:
    """Checkpoint order: the first entry (plain pass@1) inside ``window`` first, then the mean."""
    first = next(iter(scores.values()))
    return (window[0] <= first <= window[1], sum(scores.values()) / len(scores))
