"""TinyPRM 2's training data (issue 12): the policy's own samples at every trained
level, near-miss negatives, checker plus Monte-Carlo labels, grouped by problem so
the trainer can add a within-problem ranking objective.

- Policy samples (T = 1) over every family and level of the policy's training mixture.
- Near misses: per problem, reference solutions with one injected wrong step of the
  kinds the policy makes (:func:`testtime.zoo.behaviours.flawed_attempt`), carried
  forward — negatives that differ from a right solution in one step, which pooled
  random samples rarely provide — next to the reference solution itself.
- Labels per reasoning line: the checker's *on-track* label
  (:meth:`testtime.tasks.synthetic.SyntheticTask.track_steps`: a wrong step later
  redone by a ``check ... wrong`` line stops counting), and, for a share of the
  policy samples, the Monte-Carlo value of Wang et al. 2024 (Math-Shepherd): the
  fraction of ``rollouts`` policy continuations from the prefix that end right. The
  step target is their mean where both exist. The answer line's target is the
  final answer's correctness.
Every row carries its ``problem`` id, so right and wrong solutions of one problem
can be paired (:func:`pairs`). Rows are built per (family, level) shard, cached so an
interrupted sampling run resumes shard by shard.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from testtime.backends.base import Generator, SamplingParams
from testtime.store.atomic import atomic_write_json
from testtime.tasks.base import split_steps
from testtime.tasks.synthetic import format_solution
from testtime.zoo.behaviours import flawed_attempt, step_task

Row = dict[str, Any]


def labelled(task, problem, solution: str, source: str) -> Row:
    track = task.track_steps(problem, solution)
    return {"prompt": problem.prompt, "solution": solution, "steps": [float(x) for x in track],
            "correct": task.is_correct(problem, solution), "task": task.name, "level": problem.difficulty,
            "problem": problem.id, "source": source}


def mc_values(
    gen: Generator, task, jobs: list[tuple[Any, str]], rollouts: int, seed: int, max_tokens: int
) -> list[list[float]]:
    """For each (problem, solution) job, per reasoning line: the fraction of ``rollouts``
    continuations from the prefix ending after it that reach a correct answer
    (Math-Shepherd's soft label). One generate call for all jobs: small calls spend
    their time on per-step overhead."""
    prompts, owners = [], []
    for k, (problem, solution) in enumerate(jobs):
        lines = split_steps(solution)
        for i in range(len(lines)):
            prefix = "".join(f"{x}\n" for x in lines[: i + 1])
            prompts.append((problem, prefix))
            owners.append(k)
    values: list[list[float]] = [[] for _ in jobs]
    if not prompts:
        return values
    params = SamplingParams(n=rollouts, temperature=1.0, max_tokens=max_tokens, seed=seed)
    outs = gen.generate([problem.prompt + prefix for problem, prefix in prompts], params).completions
    for k, (problem, prefix), cs in zip(owners, prompts, outs, strict=True):
        values[k].append(sum(task.is_correct(problem, prefix + c.text) for c in cs) / rollouts)
    return values


def build_rows(
    gen: Generator,
    mixture: dict[str, tuple[float, tuple[int, ...]]],
    problems_per_level: int,
    samples: int,
    seed_base: int,
    seed: int,
    near_misses: int = 2,
    mc_share: float = 0.0,
    rollouts: int = 4,
    max_tokens: int = 320,
    cache: Path | None = None,
) -> list[Row]:
    """Labelled rows for every family and level of ``mixture`` (see the module docstring).
    With ``cache`` each (family, level) shard is written there atomically as it is done and
    read back instead of re-sampled, so a killed run resumes where it stopped."""
    rows: list[Row] = []
    for family, (_, levels) in mixture.items():
        task = step_task(family)
        for level in levels:
            shard = cache / f"{family}-{level}.json" if cache is not None else None
            if shard is not None and shard.exists():
                rows += json.loads(shard.read_text())
                continue
            start = time.time()
            part = level_rows(gen, task, level, problems_per_level, samples, seed_base, seed, near_misses,
                              mc_share, rollouts, max_tokens)
            if shard is not None:
                atomic_write_json(shard, part)
            rows += part
            print(f"prm data: {family} level {level}: {len(part)} rows ({time.time() - start:.0f}s)", flush=True)
    return rows


def level_rows(
    gen: Generator, task, level: int, problems_per_level: int, samples: int, seed_base: int, seed: int,
    near_misses: int, mc_share: float, rollouts: int, max_tokens: int,
) -> list[Row]:
    """The rows of one (family, level): a deterministic function of its arguments."""
    rng = random.Random(f"prm-data-{seed}-{task.name}-{level}")
    rows: list[Row] = []
    problems = task.generate(problems_per_level, level, seed=seed_base + level)
    params = SamplingParams(n=samples, temperature=1.0, max_tokens=max_tokens, seed=seed + level)
    outs = gen.generate([p.prompt for p in problems], params).completions
    monte_carlo: list[tuple[Row, Any]] = []
    longest = 0
    for p, cands in zip(problems, outs, strict=True):
        reference = task.solve(p)
        for c in cands:
            rows.append(labelled(task, p, c.text, "policy"))
            if rng.random() < mc_share:
                monte_carlo.append((rows[-1], p))
                longest = max(longest, len(reference))
        if near_misses:  # the reference anchors the near misses' within-problem pairs
            rows.append(labelled(task, p, reference, "reference"))
        for _ in range(near_misses):
            steps, answer, _ = flawed_attempt(task, p, rng)
            rows.append(labelled(task, p, format_solution(steps, answer), "near-miss"))
    # A rollout longer than twice the level's longest reference solution has run away (it
    # is graded wrong either way); the bound keeps runaways from holding the batch.
    bound = min(max_tokens, 2 * longest + 16)
    jobs = [(p, row["solution"]) for row, p in monte_carlo]
    for (row, _), mc in zip(monte_carlo, mc_values(gen, task, jobs, rollouts, rng.randrange(2**31), bound),
                            strict=True):
        row["mc"] = mc
        row["steps"] = [(a + b) / 2 for a, b in zip(row["steps"], mc, strict=False)]
    return rows


def pairs(rows: list[Row], rng: random.Random, per_problem: int = 4) -> list[tuple[int, int]]:
    """(right, wrong) row indices of the same problem, up to ``per_problem`` each."""
    by: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i, r in enumerate(rows):
        by[r["problem"]][0 if r["correct"] else 1].append(i)
    out = []
    for right, wrong in by.values():
        if right and wrong:
            out += [(rng.choice(right), rng.choice(wrong)) for _ in range(per_problem)]
    return out


def pairwise_accuracy(rows: list[Row], scores: list[float]) -> float:
    """Mean over problems with both kinds of P(score of a right > a wrong solution), ties 1/2."""
    by: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r, s in zip(rows, scores, strict=True):
        by[r["problem"]][0 if r["correct"] else 1].append(s)
    accs = []
    for right, wrong in by.values():
        if right and wrong:
            wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in right for b in wrong]
            accs.append(sum(wins) / len(wins))
    return sum(accs) / len(accs) if accs else float("nan")

