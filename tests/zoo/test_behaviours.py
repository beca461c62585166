import random

import pytest

from testtime.tasks import get_task
from testtime.tasks.base import ANSWER_PREFIX, REVISE_PREFIX, WAIT_CUE
from testtime.tasks.synthetic import parse_step
from testtime.tasks.trace import parse_line
from testtime.zoo.batches import encode_example
from testtime.zoo.behaviours import (
    BEHAVIOURS,
    check_mix,
    flawed_attempt,
    make_trace,
    step_task,
    wrong_step,
)
from testtime.zoo.tokenizer import build_tokenizer

LEVELS = {"arith": (1, 4, 8, 12), "countdown": (2, 4, 6), "mul": (1, 3, 5)}


def traces(behaviour: str, n: int = 6):
    for family, levels in LEVELS.items():
        task = step_task(family)
        for i in range(n):
            problem = task.generate(1, levels[i % len(levels)], seed=500 + i)[0]
            yield task, problem, make_trace(task, problem, behaviour, random.Random(f"{family}-{i}"))


def solution_of(trace, problem) -> str:
    """What the checker reads: everything after this problem's prompt (attempts and cues included)."""
    text = trace.text
    return text[text.rindex(problem.prompt) + len(problem.prompt) :]


def trained_flags(trace, problem) -> list[bool]:
    """Per line after this problem's prompt: whether it is trained."""
    flags, after = [], False
    for text, keep in trace.segments:
        if text == problem.prompt:
            after = True
        elif after:
            flags += [keep] * text.count("\n")
    return flags


@pytest.mark.parametrize("behaviour", ["plain", "verify", "backtrack", "subgoal", "backward", "wait", "incontext"])
def test_traces_are_checker_consistent(behaviour):
    for task, problem, trace in traces(behaviour):
        solution = solution_of(trace, problem)
        assert task.is_correct(problem, solution), trace.text
        tracked = task.track_steps(problem, solution)
        valid = task.check_steps(problem, solution)
        # the derivation in effect at the last valid line (a budget cut leaves a partial one after it)
        assert tracked[max(i for i, ok in enumerate(valid) if ok)], (trace.text, tracked)
        # every trained line is valid; a line the checker rejects is never trained
        flags = trained_flags(trace, problem)
        assert len(flags) == len(valid) + 1  # + the answer line
        assert all(ok or not keep for ok, keep in zip(valid, flags, strict=False)), trace.text


def test_backtracking_flags_the_injected_error_and_redoes_it():
    seen = 0
    for task, problem, trace in traces("backtrack"):
        untrained_steps = [t for t, keep in trace.segments[1:] if not keep]
        if not untrained_steps:
            continue  # no wrong step could be injected
        seen += 1
        solution = solution_of(trace, problem)
        valid = task.check_steps(problem, solution)
        assert valid.count(False) == 1, trace.text
        lines = solution.strip().split("\n")
        bad = valid.index(False)
        assert lines[bad] == untrained_steps[0].strip()
        redo = parse_line(lines[bad + 1])
        assert redo is not None and redo.kind == "check" and redo.verdict == "wrong"
    assert seen >= 12


def test_injected_errors_fail_the_step_checker_and_cover_the_measured_kinds():
    task = get_task("arith")
    kinds = set()
    for i in range(200):
        rng = random.Random(i)
        problem = task.generate(1, 6, seed=i)[0]
        steps, _ = task.derive(problem)
        j = rng.randrange(len(steps) - 1)
        bad = wrong_step(task, problem, steps, j, rng)
        ref = steps[j]
        assert bad is not None and bad != ref
        assert task.check_steps(problem, "".join(f"{s}\n" for s in [*steps[:j], bad]))[-1] is False
        if (bad.op, bad.right) == (steps[j + 1].op, steps[j + 1].right) and ref.op != bad.op or ref.right != bad.right:
            kinds.add("dropped" if (bad.op, bad.right) == (steps[j + 1].op, steps[j + 1].right) else "lookup")
        else:
            kinds.add("result")
    assert kinds == {"dropped", "lookup", "result"}


def test_wait_keeps_a_right_attempt_and_fixes_a_wrong_one():
    kept = fixed = 0
    for _, _, trace in traces("wait", 20):
        if trace.segments[-2][0].endswith(ANSWER_PREFIX):
            continue  # a cut review (below)
        context, target = trace.segments[-2][0], trace.segments[-1][0]
        assert context.endswith(WAIT_CUE)
        verdicts = [parse_line(x).verdict for x in target.split("\n") if parse_line(x) is not None]
        if "wrong" in verdicts:
            fixed += 1
            assert verdicts.count("wrong") == 1 and verdicts[-1] == "wrong"
        else:
            kept += 1
            assert all(parse_step(x) is None for x in target.split("\n")[:-2])  # nothing re-derived
    assert kept and fixed
    assert kept > 2 * fixed  # most attempts before wait are right, as the model's are


def test_a_cut_review_answers_with_the_checked_attempt():
    cuts = partial = 0
    for task, problem, trace in traces("wait", 30):
        forced, answer = trace.segments[-2], trace.segments[-1]
        if not forced[0].endswith(ANSWER_PREFIX):
            continue
        cuts += 1
        partial += forced[0] != ANSWER_PREFIX
        assert not forced[1] and answer[1]  # the forced answer: and a cut line are context
        assert task.equivalent(problem, answer[0].strip()) and answer[0].endswith("\n")
        attempt = trace.segments[1][0]
        assert task.is_correct(problem, attempt.replace(WAIT_CUE, f"{ANSWER_PREFIX} {answer[0].strip()}\n"))
        checks = [parse_line(x) for t, keep in trace.segments[2:-2] if keep for x in t.strip().split("\n")]
        assert all(c is not None and c.verdict == "ok" for c in checks)
        # the same answer line as a plain solution
        assert (forced[0] + answer[0]).split("\n")[-2] == task.solve(problem).strip().split("\n")[-1]
    assert cuts >= 5 and partial >= 1


def test_revision_uses_feedback_and_keeps_a_right_attempt():
    for task, problem, trace in traces("revise", 20):
        context, target = trace.segments[-2][0], trace.segments[-1][0]
        cue = context.strip().split("\n")[-1]
        assert cue.startswith(REVISE_PREFIX)
        assert task.is_correct(problem, target) and all(task.check_steps(problem, target))
        attempt_right = task.is_correct(problem, context.rsplit(REVISE_PREFIX, 1)[0])
        assert attempt_right == ("wrong" not in target)


def test_incontext_examples_are_solved_trained_and_come_before_the_prompt():
    for task, problem, trace in traces("incontext", 6):
        texts = [t for t, _ in trace.segments]
        examples = trace.segments[: texts.index(problem.prompt)]
        assert examples and len(examples) % 2 == 0
        for (prompt, shown), (solution, trained) in zip(examples[::2], examples[1::2], strict=True):
            assert not shown and trained  # packing: the example's solution carries loss, its prompt not
            other = type(problem)(id="x", prompt=prompt, answer="", task=task.name)
            assert all(task.check_steps(other, solution))


def test_untrained_segments_carry_no_loss():
    task = step_task("arith")
    problem = task.generate(1, 6, seed=3)[0]
    trace = make_trace(task, problem, "backtrack", random.Random(1))
    ids, labels = encode_example(build_tokenizer(), trace)
    assert len(ids) == len(labels) == len(trace.text) + 2  # <bos>, <eos>
    trained = sum(len(t) for t, keep in trace.segments if keep) + 1
    assert sum(lab != -100 for lab in labels) == trained


def test_bad_behaviour_or_task_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: backtrack, backward, incontext"):
        check_mix({"verify": 1.0, "reflect": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        check_mix({"verify": -1.0})
    with pytest.raises(ValueError, match="valid: arith, countdown, mul"):
        step_task("freeform")
    assert set(BEHAVIOURS.names()) >= {"verify", "backtrack", "subgoal", "backward", "wait", "revise"}


def test_flawed_attempt_reports_its_first_wrong_step():
    task = step_task("arith")
    for i in range(50):
        problem = task.generate(1, 5, seed=i)[0]
        steps, answer, j = flawed_attempt(task, problem, random.Random(i))
        text = "".join(f"{s}\n" for s in steps)
        assert task.check_steps(problem, text).index(False) == j
        assert not task.equivalent(problem, answer) or len(steps) < 5
