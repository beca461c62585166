from testtime.tasks import get_task
from testtime.tasks.trace import check_line, parse_line, undo_line

ARITH = get_task("arith")
PROBLEM = ARITH.generate(1, 3, seed=0)[0]  # arith: 77 +9 -8 -76 -> 77+9=86, 86-8=78, 78-76=2


def lines(*rows: str) -> str:
    return "".join(f"{r}\n" for r in rows)


def test_grammar_round_trips():
    assert parse_line(check_line("10*2=20", True)).verdict == "ok"
    assert parse_line(check_line("10*2=20", False)).step == "10*2=20"
    assert parse_line(undo_line(20, "/", 2, 10)).numbers == (20, 2, 10)
    assert parse_line("check this") is None and parse_line("10+2=12") is None


def test_verification_is_valid_only_when_true():
    assert ARITH.check_steps(PROBLEM, lines("77+9=86", "check 77+9=86 ok")) == [True, True]
    # confirming a wrong step, or calling a right one wrong, is itself wrong
    assert ARITH.check_steps(PROBLEM, lines("77+9=87", "check 77+9=87 ok")) == [False, False]
    assert ARITH.check_steps(PROBLEM, lines("77+9=86", "check 77+9=86 wrong")) == [True, False]


def test_backtracking_redoes_the_step_and_continues_from_it():
    text = lines("77+9=86", "86-9=77", "check 86-8=78 wrong", "78-76=2", "answer: 2")
    assert ARITH.check_steps(PROBLEM, text) == [True, False, True, True]
    assert ARITH.track_steps(PROBLEM, text) == [True, False, True, True]
    # carrying on from the wrong step instead is flagged
    assert ARITH.check_steps(PROBLEM, lines("77+9=86", "86-9=77", "check 86-8=78 wrong", "77-76=1"))[-1] is False


def test_review_after_wait_compares_with_the_previous_derivation():
    right = lines("77+9=86", "86-8=78", "78-76=2", "wait", "check 77+9=86 ok", "check 86-8=78 ok", "check 78-76=2 ok")
    assert all(ARITH.check_steps(PROBLEM, right))
    wrong = lines("77+9=86", "86-8=79", "79-76=3", "wait", "check 77+9=86 ok", "check 86-8=78 wrong", "78-76=2")
    assert ARITH.check_steps(PROBLEM, wrong) == [True, False, True, True, True, True, True]
    keeps_wrong = lines("77+9=86", "86-8=79", "79-76=3", "wait", "check 77+9=86 ok", "check 86-8=78 ok")
    assert ARITH.check_steps(PROBLEM, keeps_wrong)[-1] is False


def test_subgoal_and_backward_lines():
    assert ARITH.check_steps(PROBLEM, lines("plan: 3 steps", "77+9=86", "done 1 of 3")) == [True, True, True]
    assert ARITH.check_steps(PROBLEM, lines("plan: 4 steps", "77+9=86", "done 2 of 3")) == [False, True, False]
    back = lines("77+9=86", "86-8=78", "78-76=2", "undo 2+76=78", "undo 78+8=86", "undo 86-9=77", "start 77 ok")
    assert all(ARITH.check_steps(PROBLEM, back))
    assert ARITH.check_steps(PROBLEM, back.replace("undo 78+8=86", "undo 78+8=87"))[4] is False
    assert ARITH.check_steps(PROBLEM, lines("77+9=86", "start 77 ok")) == [True, False]
