"""Cognitive modes as explicit formats, and TimeHC-RL's rewards (Hou et al. 2025, "TimeHC-RL:
temporal-aware hierarchical cognitive reinforcement learning for enhancing LLMs' social
intelligence").

A response opens with its mode line, then reasons at that mode's depth:

- ``mode: intuition`` (System 1): the answer line alone;
- ``mode: surface`` (surface-level thinking): one reasoning line, then the answer;
- ``mode: deliberate`` (System 2): a reasoning chain (for the ``social`` task the
  time-stamped timeline of the events that matter: temporal awareness is part of
  the format), then the answer.

Rewards, as the paper sets them: format 1 (a known mode line, that mode's number of
reasoning lines, an answer line) else 0; accuracy +2 for a correct answer, -1.5 for a
wrong or missing one; and the temporal advantage-level reward: per prompt, the same
group size is sampled on the story with its events shuffled (order destroyed, times
renumbered), and when the group's accuracy on the ordered story beats ``mu`` times its
accuracy on the shuffled one, every correct response gets ``alpha`` more (the T-GRPO
contrast of Video-R1, Feng et al. 2025, which TimeHC-RL adopts for timelines).
``deliberation_cost`` (per reasoning line, default 0: not in the paper) is the
issue's "penalise unneeded deliberation" option.

Deviations: tags are plain lines (``mode: ...``) in the embedded tokenizer's
characters, not XML tags; ``alpha`` 0.1 is the paper's, ``mu`` 0.8 is Video-R1's
(TimeHC-RL's value could not be read here).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from testtime.tasks.base import Problem, Task, extract_final_answer, split_steps
from testtime.tasks.labels import grading

MODES = ("intuition", "surface", "deliberate")
DETAIL = {"intuition": "answer", "surface": "brief", "deliberate": "full"}  # SocialTask.solution
MODE_PREFIX = "mode: "
_EVENT_LINE = re.compile(r"t(\d+): ")


def mode_line(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown cognitive mode {mode!r}; valid: {', '.join(MODES)}")
    return f"{MODE_PREFIX}{mode}\n"


def split_mode(text: str) -> tuple[str | None, str]:
    """(the mode of a response or None, the rest of it)."""
    first, _, rest = text.lstrip("\n").partition("\n")
    mode = first.strip()[len(MODE_PREFIX):].strip() if first.strip().startswith(MODE_PREFIX) else None
    return (mode, rest) if mode in MODES else (None, text)


def format_ok(text: str) -> bool:
    """A known mode line, that mode's number of reasoning lines, and an answer line."""
    mode, rest = split_mode(text)
    if mode is None or extract_final_answer(rest) is None:
        return False
    n = len(split_steps(rest))
    return n == 0 if mode == "intuition" else n == 1 if mode == "surface" else n >= 1


def mode_solution(task: Task, problem: Problem, mode: str) -> str:
    """The reference response in ``mode`` (data to teach the formats; the task needs a
    ``solution(problem, detail)`` method, as ``social`` has)."""
    solution = getattr(task, "solution", None)
    if not callable(solution):
        raise ValueError(f"task {task.name!r} has no solutions at several levels of detail (use social)")
    return mode_line(mode) + solution(problem, DETAIL[mode])


def shuffle_events(prompt: str, rng: random.Random) -> str:
    """The prompt with its event lines ``t1..tn`` in a random order, renumbered, so the
    order no longer tells what happened when (the temporal reward's contrast)."""
    lines = prompt.split("\n")
    slots = [i for i, line in enumerate(lines) if (m := _EVENT_LINE.match(line)) and m.group(1) != "0"]
    if len(slots) < 2:
        raise ValueError("the temporal reward needs prompts with a timeline of events "
                         "(lines 't1: ...', 't2: ...'; use the social task)")
    bodies = [_EVENT_LINE.sub("", lines[i], count=1) for i in slots]
    rng.shuffle(bodies)
    for k, (i, body) in enumerate(zip(slots, bodies, strict=True), 1):
        lines[i] = f"t{k}: {body}"
    return "\n".join(lines)


@dataclass(frozen=True)
class RewardSpec:
    format_reward: float = 1.0
    correct: float = 2.0
    wrong: float = -1.5
    alpha: float = 0.1  # temporal advantage-level reward
    mu: float = 0.8
    deliberation_cost: float = 0.0


def correct_of(task: Task, problem: Problem, text: str) -> bool:
    """Gold correctness of a training response (the reward reads the generated split's answer)."""
    answer = task.extract_answer(text)
    with grading():
        return answer is not None and task.equivalent(problem, answer)


def rewards(texts: Sequence[str], correct: Sequence[bool], spec: RewardSpec,
            shuffled_accuracy: float | None) -> tuple[list[float], bool]:
    """Rewards of one prompt's group (texts include their mode line) and whether the
    temporal bonus was paid (``shuffled_accuracy`` None: no temporal reward)."""
    accuracy = sum(correct) / len(correct)
    bonus = shuffled_accuracy is not None and accuracy > spec.mu * shuffled_accuracy
    out = []
    for text, ok in zip(texts, correct, strict=True):
        r = spec.format_reward * format_ok(text) + (spec.correct if ok else spec.wrong)
        r += spec.alpha * (bonus and ok)
        r -= spec.deliberation_cost * len(split_steps(split_mode(text)[1]))
        out.append(r)
    return out, bonus


def mode_shares(texts: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    """Share of each mode (and of no mode) and each mode's accuracy."""
    modes = [split_mode(t)[0] or "none" for t in texts]
    counts = Counter(modes)
    out = {f"mode_{m}": counts[m] / len(texts) for m in (*MODES, "none")}
    for m in MODES:
        if counts[m]:
            out[f"acc_{m}"] = sum(ok for k, ok in zip(modes, correct, strict=True) if k == m) / counts[m]
    return out
