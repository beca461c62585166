"""The cognitive-behaviours recipe: solutions, built from a task family's step
checker, that show the behaviours Gandhi et al. (2025, "Cognitive Behaviors that
Enable Self-Improving Reasoners") found to make RL work — verification,
backtracking, subgoal setting, backward chaining — plus the three contracts of
the sequential strategies: continuing after ``wait`` by *checking* the previous
derivation (keeping it when right), revision that uses feedback, and solving
with solved examples in the prompt. The line grammar is :mod:`testtime.tasks.trace`.

A trace is a list of segments ``(text, trained)``; the prompt, a first attempt,
cues, in-context examples and every injected wrong step are context (no loss),
so a model primed on traces learns to notice and redo a wrong step, never to
make one; every trace ends in the same ``answer: X`` line as a plain solution. Injected errors are the kinds TinyReasoner v1 really makes (measured
on 400 of its arith level-6 samples: result slips 67%, operand lookup slips
18%, dropped steps 14%); every injected step fails the task's step checker.

Deviations from the paper: traces are generated from the checker, not written
by a larger model (Claude there), and the behaviours are in the task's compact line
format; the paper trains on whole traces, mistakes included, while here injected
mistakes are context (no loss), so priming does not teach the plain mode to err.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from testtime.registry import Registry
from testtime.tasks import SYNTHETIC_TASKS, get_task
from testtime.tasks.arith import ArithTask
from testtime.tasks.base import ANSWER_PREFIX, REVISE_PREFIX, WAIT_CUE, Problem
from testtime.tasks.synthetic import Step, SyntheticTask, apply_op, format_solution, perturb
from testtime.tasks.trace import (
    INVERSE,
    check_line,
    done_line,
    plan_line,
    start_line,
    undo_line,
    undo_value,
)
from testtime.zoo.reasoner_data import TRAIN_SEED_BASE

Segments = list[tuple[str, bool]]
ERROR_KINDS = {"result": 0.67, "lookup": 0.19, "dropped": 0.14}
VERIFY_RATE = 0.3  # share of steps re-checked in a verification trace
# Most derivations before a ``wait`` or ``revise`` are right (v1: pass@1 0.6-0.7 at the mid
# levels, higher below), so most reviews confirm and keep: a review that rewrites right work
# is what broke budget forcing and self-refine on v1.
WAIT_RIGHT = 0.8
REVISE_RIGHT = 0.6
CUT_SHARE = 0.3  # right-attempt wait traces whose review the budget cuts (answer forced)


@dataclass(frozen=True)
class Trace:
    family: str
    behaviour: str
    segments: Segments  # (text, trained); the first one is the prompt

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.segments)


# name -> build(task, problem, rng) -> segments (the prompt among them, as context)
BEHAVIOURS: Registry[Segments] = Registry("behaviour")


def step_task(family: str) -> SyntheticTask:
    """The task ``family`` if it has the step checker the recipe needs, else a clear error."""
    task = get_task(family) if family in SYNTHETIC_TASKS else None
    if not isinstance(task, SyntheticTask) or not task.has_step_checker:
        raise ValueError(
            f"task {family!r} has no step checker to build behaviour traces from;"
            f" valid: {', '.join(SYNTHETIC_TASKS)}"
        )
    return task


def check_mix(mix: dict[str, float]) -> dict[str, float]:
    """Validate a behaviour mix (name -> weight) before any training."""
    unknown = [name for name in mix if name not in BEHAVIOURS.names()]
    if unknown:
        raise ValueError(f"unknown behaviour(s) {', '.join(unknown)}; valid: {', '.join(BEHAVIOURS.names())}")
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"a behaviour mix needs non-negative weights with a positive sum, got {mix}")
    return mix


def make_trace(task: SyntheticTask, problem: Problem, behaviour: str, rng: random.Random) -> Trace:
    return Trace(task.name, behaviour, BEHAVIOURS.get(behaviour)(task, problem, rng))


def _prompt(problem: Problem) -> Segments:
    return [(problem.prompt, False)]


def _lines(lines: list[str], trained: bool = True) -> Segments:
    return [("".join(f"{line}\n" for line in lines), trained)] if lines else []


def _answer(answer: str) -> str:
    return f"{ANSWER_PREFIX} {answer}"


def wrong_step(task: SyntheticTask, problem: Problem, steps: list[Step], j: int, rng: random.Random) -> Step | None:
    """A wrong version of reference step ``j`` (a result slip, an operand lookup slip or a
    dropped step), one the task's step checker rejects; None if none was found."""
    ref = steps[j]
    operands = [s.right for s in steps if s.right != ref.right]
    for _ in range(10):
        kind = rng.choices(list(ERROR_KINDS), weights=list(ERROR_KINDS.values()))[0]
        if kind == "dropped" and j + 1 < len(steps):  # the next operation done in its place
            nxt = steps[j + 1]
            step = Step(ref.left, nxt.op, nxt.right, apply_op(ref.left, nxt.op, nxt.right))
        elif kind == "lookup":  # another operand of the problem, or this one misread
            right = rng.choice(operands) if operands and rng.random() < 0.5 else perturb(ref.right, rng)
            step = Step(ref.left, ref.op, right, apply_op(ref.left, ref.op, right))
        else:
            step = Step(ref.left, ref.op, ref.right, perturb(ref.result, rng))
        state = _state_before(task, problem, steps, j)
        legal, _ = task._check_step(problem, state, j, step)
        if step.result >= 0 and not (legal and step.correct):
            return step
    return None


def _state_before(task: SyntheticTask, problem: Problem, steps: list[Step], j: int):
    state = task._initial_state(problem)
    for i in range(j):
        state = task._check_step(problem, state, i, steps[i])[1]
    return state


def flawed_attempt(task: SyntheticTask, problem: Problem, rng: random.Random) -> tuple[list[Step], str, int]:
    """A complete wrong attempt and its first wrong position: one injected error that the
    later steps carry forward (arith re-applies its remaining operations; the other
    families use their own ``corrupt``)."""
    steps, _ = task.derive(problem)
    if isinstance(task, ArithTask):
        for _ in range(10):
            j = rng.randrange(len(steps))
            bad = wrong_step(task, problem, steps, j, rng)
            if bad is None:
                continue
            _, ops = task.parse(problem)
            dropped = (bad.op, bad.right) == ops[j + 1] if j + 1 < len(ops) else False
            out, value = [*steps[:j], bad], bad.result
            for op, x in ops[j + (2 if dropped else 1) :]:
                out.append(Step(value, op, x, apply_op(value, op, x)))
                value = out[-1].result
            if all(s.result >= 0 for s in out):
                return out, str(value), j
    attempt, answer, j = task.corrupt(problem, rng)
    return attempt, answer, (len(attempt) if j is None else j)


def review(ref: list[Step], attempt: list[Step], answer: str) -> list[str]:
    """Check an earlier derivation step by step: keep each step that re-derives the same,
    redo the first one that does not and continue from it."""
    lines, diverged = [], False
    for p, step in enumerate(ref):
        if diverged:
            lines.append(str(step))
        else:
            same = p < len(attempt) and attempt[p] == step
            lines.append(check_line(step, same))
            diverged = not same
    return [*lines, _answer(answer)]


@BEHAVIOURS.register("plain")
def plain(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    return [*_prompt(problem), (task.solve(problem), True)]


@BEHAVIOURS.register("verify")
def verify(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """Re-check steps and confirm them: ``check 10*2=20 ok``."""
    steps, answer = task.derive(problem)
    checked = {j for j in range(len(steps)) if rng.random() < VERIFY_RATE} or {rng.randrange(len(steps))}
    lines = [line for j, s in enumerate(steps) for line in ([str(s), check_line(s, True)] if j in checked else [str(s)])]
    return [*_prompt(problem), *_lines([*lines, _answer(answer)])]


@BEHAVIOURS.register("backtrack")
def backtrack(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """A wrong step (untrained) noticed, said so and redone: ``check 10*2=20 wrong``."""
    steps, answer = task.derive(problem)
    j = rng.randrange(len(steps))
    bad = wrong_step(task, problem, steps, j, rng)
    head = [line for s in steps[:j] for line in ([str(s), check_line(s, True)] if rng.random() < 0.15 else [str(s)])]
    if bad is None:
        return [*_prompt(problem), *_lines([*head, *map(str, steps[j:]), _answer(answer)])]
    tail = [check_line(steps[j], False), *map(str, steps[j + 1 :]), _answer(answer)]
    return [*_prompt(problem), *_lines(head), (f"{bad}\n", False), *_lines(tail)]


@BEHAVIOURS.register("subgoal")
def subgoal(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """Set the goal's size first and mark the first half as a subgoal reached."""
    steps, answer = task.derive(problem)
    n, half = len(steps), len(steps) // 2
    lines = [plan_line(n)]
    for j, s in enumerate(steps):
        lines.append(str(s))
        if j + 1 == half and n >= 4:
            lines.append(done_line(half, n))
    return [*_prompt(problem), *_lines([*lines, _answer(answer)])]


@BEHAVIOURS.register("backward")
def backward(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """Chain back from the result to the start by the inverse operations (chains only)."""
    steps, answer = task.derive(problem)
    chain = all(b.left == a.result for a, b in zip(steps, steps[1:], strict=False))
    undos = [undo_line(s.result, INVERSE[s.op], s.right, s.left) for s in reversed(steps)]
    if not chain or any(undo_value(s.result, INVERSE[s.op], s.right) != s.left for s in steps):
        return plain(task, problem, rng)
    return [*_prompt(problem), *_lines([*map(str, steps), *undos, start_line(steps[0].left), _answer(answer)])]


@BEHAVIOURS.register("wait")
def wait(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """After an attempt and ``wait``: check it step by step, keep it when right (most
    attempts: ``WAIT_RIGHT``, as at the mid levels), redo only from the injected error;
    sometimes a second ``wait`` round. ``CUT_SHARE`` of the right ones are cut mid-review
    by the budget and answered at once (budget forcing forces ``answer:`` there): the
    answer is the checked attempt's."""
    ref, answer = task.derive(problem)
    right = rng.random() < WAIT_RIGHT
    attempt = ref if right else flawed_attempt(task, problem, rng)[0]
    context = [*map(str, attempt), WAIT_CUE.strip()]
    if right and rng.random() < CUT_SHARE:
        return [*_prompt(problem), *_lines(context, False), *cut_review(ref, answer, rng)]
    if rng.random() < 0.25:  # budget forcing with more than one extension
        context += [*review(ref, attempt, answer)[:-1], WAIT_CUE.strip()]
        attempt = ref
    return [*_prompt(problem), *_lines(context, False), *_lines(review(ref, attempt, answer))]


def cut_review(ref: list[Step], answer: str, rng: random.Random) -> Segments:
    """A review of a right derivation cut after ``k`` confirmed lines, inside the next one
    (the cut part is context), then the forced ``answer:`` (context) and the answer."""
    checks = [check_line(s, True) for s in ref]
    k = rng.randrange(len(checks))
    partial = checks[k][: rng.randrange(len(checks[k]))]
    forced = (f"{partial}\n" if partial else "") + ANSWER_PREFIX
    return [*_lines(checks[:k]), (forced, False), (f" {answer}\n", True)]


@BEHAVIOURS.register("revise")
def revise(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """After a complete attempt and ``revise`` / ``revise step j`` (feedback): check it,
    keep what is right (a right attempt, ``REVISE_RIGHT`` of them, stays right, even under
    a false alarm)."""
    ref, answer = task.derive(problem)
    if rng.random() < REVISE_RIGHT:
        attempt, given, j = ref, answer, rng.randrange(len(ref))  # right; feedback a false alarm
    else:
        attempt, given, j = flawed_attempt(task, problem, rng)
    cue = f"{REVISE_PREFIX} step {j + 1}" if rng.random() < 0.5 and j < len(attempt) else REVISE_PREFIX
    context = format_solution(attempt, given) + f"{cue}\n"
    return [*_prompt(problem), (context, False), *_lines(review(ref, attempt, answer))]


INNER = ("plain",)  # the solution after the examples: plain (the default mode stays unchanged)


@BEHAVIOURS.register("incontext")
def incontext(task: SyntheticTask, problem: Problem, rng: random.Random) -> Segments:
    """One or two solved examples of the family (nearby levels) before the prompt, then a
    solution with one of the inner behaviours: examples must help, never derail. The
    examples' solutions are trained too (packing): from scratch the model only saw
    positions up to one solution's length (~200), and a model never trained to solve
    further into its window derails after two examples (TinyReasoner 2b: 0.00)."""
    level = problem.difficulty or 1
    examples: Segments = []
    for _ in range(rng.choice((1, 2, 2))):
        seed = rng.randrange(TRAIN_SEED_BASE, 10**9)  # never a validation or test seed
        other = task.generate(1, max(_min_level(task), level + rng.randint(-2, 2)), seed=seed)[0]
        examples += [(other.prompt, False), (task.solve(other), True)]
    return [*examples, *BEHAVIOURS.get(rng.choice(INNER))(task, problem, rng)]


def _min_level(task: SyntheticTask) -> int:
    return 2 if task.name == "countdown" else 1


def sample_trace(
    mix: dict[str, float], families: dict[str, tuple[float, tuple[int, ...]]], seed: int, index: int,
    problem_seed: Callable[[int, int], int],
) -> Trace:
    """Trace ``index`` of the stream for ``seed``: identical in every process."""
    rng = random.Random(f"behaviours-{seed}-{index}")
    family = rng.choices(list(families), weights=[w for w, _ in families.values()])[0]
    task = step_task(family)
    level = rng.choice(families[family][1])
    problem = task.generate(1, level, seed=problem_seed(seed, index))[0]
    behaviour = rng.choices(list(mix), weights=list(mix.values()))[0]
    return make_trace(task, problem, behaviour, rng)
