import pytest

from testtime.tasks import get_task
from testtime.tasks.base import Problem
from testtime.tasks.social_story import Event, Story, parse_story

# Sally-Anne with a witness: ben leaves, anna moves the ball while carl watches,
# carl leaves, anna moves it again, ben comes back.
STORY = Story(
    ("anna", "ben", "carl"), (("ball", "box"), ("key", "jar")),
    (Event("leave", "ben"), Event("move", "anna", "ball", "basket"), Event("leave", "carl"),
     Event("move", "anna", "ball", "bag"), Event("enter", "ben"), Event("move", "ben", "key", "box")),
)


def problem(question: str, answer: str) -> Problem:
    text = "social: " + "\n".join(STORY.lines()) + f"\nq: {question}\n"
    return Problem("x", text, answer, "social", 1)


def test_beliefs_follow_the_common_witness_rule():
    assert STORY.location("ball", 6) == "bag"
    assert STORY.belief(("anna",), "ball") == "bag"
    assert STORY.belief(("ben",), "ball") == "box"  # false belief: left before any move
    assert STORY.belief(("carl",), "ball") == "basket"
    assert STORY.belief(("anna", "carl"), "ball") == "basket"  # anna knows carl missed t4
    assert STORY.belief(("carl", "ben"), "ball") == "box"
    assert STORY.belief(("ben",), "key") == "box"  # saw that move after coming back
    assert STORY.present(3) == {"anna"} and STORY.present(5) == {"anna", "ben"}
    assert parse_story(STORY.lines()) == STORY


def test_questions_answers_and_equivalence():
    task = get_task("social")
    p = problem("where does anna think carl thinks the ball is?", "basket")
    story, question = task.parse(p)
    assert task.gold(story, question)[0] == "basket"
    assert task.equivalent(p, "the basket.") and not task.equivalent(p, "bag")
    who = problem("who was in the room after t2?", "anna and carl")
    assert task.gold(*task.parse(who))[0] == "anna and carl"
    assert task.equivalent(who, "carl, anna") and not task.equivalent(who, "anna")
    assert task.answer_key(who, "carl and anna") == task.answer_key(who, "anna, carl")


def test_step_checker_flags_only_false_lines():
    task = get_task("social")
    p = problem("where does anna think carl thinks the ball is?", "basket")
    full = task.solve(p)
    assert full.splitlines()[-2:] == ["anna thinks carl thinks ball in basket", "answer: basket"]
    assert all(task.check_steps(p, full))
    lines = ["t2: ball in basket. present anna carl.", "t2: ball in basket. present anna ben carl.",
             "t4: anna moves the ball to the bag.", "t4: anna moves the ball to the box.",
             "ben thinks ball in box", "ben thinks ball in bag", "dora thinks ball in box",
             "t9: ball in bag.", "the ball is somewhere"]
    assert task.check_steps(p, "\n".join(lines) + "\nanswer: basket\n") == [
        True, False, True, False, True, False, False, False, False]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_generated_problems_are_seeded_solvable_and_checked(level):
    task = get_task("social")
    problems = task.generate(40, level, seed=3)
    assert problems == task.generate(40, level, seed=3)
    assert problems != task.generate(40, level, seed=4)
    assert all(p.difficulty == level for p in problems)
    for p in problems:
        for detail in ("answer", "brief", "full"):
            text = task.solution(p, detail)
            assert task.is_correct(p, text) and all(task.check_steps(p, text))
        assert len(task.solution(p, "answer").splitlines()) == 1
        assert len(task.solution(p, "brief").splitlines()) == 2
    if level:
        false = []
        for p in problems:
            story, question = task.parse(p)
            obj = question.split(" the ")[-1].split()[0]
            false.append(p.answer != story.location(obj, story.times))
        assert 0.3 < sum(false) / len(false) < 0.7  # half are false-belief questions
        assert all(p.prompt.count(" thinks ") == level - 1 for p in problems)


def test_knobs_shape_the_story_and_bad_input_is_a_clear_error():
    task = get_task("social", agents=5, events=6, distractors=0)
    story, _ = task.parse(task.generate(1, 1, seed=0)[0])
    assert len(story.agents) == 5 and story.times == 6 and len(story.start) == 1
    with pytest.raises(ValueError, match="agents"):
        get_task("social", agents=1)
    with pytest.raises(ValueError, match="belief order"):
        task.generate(1, -1, seed=0)
    with pytest.raises(ValueError, match="not a social prompt"):
        task.parse(Problem("y", "arith: 1+2\n", "3", "arith"))
    with pytest.raises(ValueError, match="not event t1"):
        parse_story(["t0: anna and ben are in the room. the ball is in the box.", "t2: ben leaves."])
