"""TinyReasoner's training mixture: plain solutions plus the two behaviours
sequential test-time strategies rely on (see ``WAIT_CUE`` / ``REVISE_PREFIX`` in
:mod:`testtime.tasks.base`).

Every example is ``<bos> context target <eos>``; the loss covers ``target`` only.
- plain (70%): context = prompt, target = reference solution.
- wait (15%): context = prompt + a first attempt's steps (no answer line; one
  injected mistake carried forward in half of them) + ``"wait\\n"``; target = the
  correct steps and answer line (budget forcing / s1).
- revise (15%): context = prompt + a complete first attempt (wrong in two thirds
  of them) + ``"revise step j\\n"`` (j = its first wrong step, the feedback a
  verifier would give) or ``"revise\\n"``; target = the correct solution.
The attempt and the cue are context, never targets: the model must not learn to
make mistakes or to emit cues by itself; it learns to continue correctly after them.

Problems come from the task generators with seeds >= ``TRAIN_SEED_BASE``; seed
``VALID_SEED`` is for checkpoint selection and ``TEST_SEED`` for held-out evaluation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from testtime.tasks import SYNTHETIC_TASKS, get_task
from testtime.tasks.base import REVISE_PREFIX, WAIT_CUE
from testtime.tasks.synthetic import SyntheticTask, format_solution

TEST_SEED = 0
VALID_SEED = 1
TRAIN_SEED_BASE = 1_000_000

# family -> (share of examples, training difficulties: the reported levels and a bit beyond)
MIXTURE: dict[str, tuple[float, tuple[int, ...]]] = {
    "arith": (0.7, (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)),
    "countdown": (0.15, (2, 3, 4, 5, 6)),
    "mul": (0.15, (1, 2, 3, 4, 5)),
}
KINDS = {"plain": 0.7, "wait": 0.15, "revise": 0.15}


@dataclass(frozen=True)
class Example:
    family: str
    kind: str
    context: str  # conditioned on, no loss
    target: str  # trained on

    @property
    def segments(self) -> list[tuple[str, bool]]:
        """(text, trained) parts, as :func:`testtime.zoo.batches.encode_example` reads them."""
        return [(self.context, False), (self.target, True)]


def make_example(seed: int, index: int) -> Example:
    """Example ``index`` of the stream for ``seed``: identical in every process."""
    rng = random.Random(f"reasoner-{seed}-{index}")
    family = rng.choices(list(MIXTURE), weights=[w for w, _ in MIXTURE.values()])[0]
    difficulty = rng.choice(MIXTURE[family][1])
    task = get_task(family)
    assert isinstance(task, SyntheticTask) and family in SYNTHETIC_TASKS
    problem = task.generate(1, difficulty, seed=TRAIN_SEED_BASE + seed * 10**7 + index)[0]
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    solution = task.solve(problem)
    if kind == "plain":
        return Example(family, kind, problem.prompt, solution)
    if kind == "wait":
        steps = task.derive(problem)[0] if rng.random() < 0.5 else task.corrupt(problem, rng)[0]
        attempt = "".join(f"{s}\n" for s in steps)
        return Example(family, kind, problem.prompt + attempt + WAIT_CUE, solution)
    if rng.random() < 1 / 3:
        attempt, cue = solution, f"{REVISE_PREFIX}\n"
    else:
        steps, answer, wrong = task.corrupt(problem, rng)
        attempt = format_solution(steps, answer)
        with_feedback = wrong is not None and rng.random() < 0.5
        cue = f"{REVISE_PREFIX} step {wrong + 1}\n" if with_feedback else f"{REVISE_PREFIX}\n"
    return Example(family, kind, problem.prompt + attempt + cue, solution)
