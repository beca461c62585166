import pytest

from testtime.agents import ENVIRONMENTS, BFSPolicy, LoopOptions, run_episode
from testtime.agents.site import generate_site
from testtime.agents.web import WebEnv


def test_a_seed_gives_the_same_site_and_other_seeds_other_sites():
    a, b = generate_site(3, depth=2), generate_site(3, depth=2)
    assert a.task == b.task and a.answer == b.answer and a.pages.keys() == b.pages.keys()
    assert len({generate_site(s).answer for s in range(10)}) > 5


@pytest.mark.parametrize("depth,distractors", [(1, 0), (1, 2), (2, 0), (2, 4), (3, 3)])
def test_every_generated_task_is_solvable_by_bfs_and_has_its_distractors(depth, distractors):
    env = WebEnv(depth=depth, distractors=distractors)
    for seed in range(20):
        site = generate_site(seed, depth=depth, distractors=distractors)
        same_name = [i for i in site.items if i.name == site.target.name]
        assert len(same_name) == distractors + 1
        assert [i.colour for i in same_name].count(site.target.colour) == 1  # the answer is unique
        episode = run_episode(env, BFSPolicy(), seed, LoopOptions(horizon=200))
        assert episode.success and episode.ended == "answer" and episode.answer == site.answer


def test_deeper_sites_need_more_steps():
    steps = {d: sum(run_episode(WebEnv(depth=d), BFSPolicy(), s, LoopOptions(horizon=500))
                    .ledger.steps for s in range(10)) for d in (1, 2, 3)}
    assert steps[1] < steps[2] < steps[3]


@pytest.mark.parametrize("knobs", [{"depth": 0}, {"branching": 1}, {"distractors": -1},
                                   {"depth": 1, "distractors": 3}, {"depth": 6}])
def test_bad_knobs_are_clear_errors(knobs):
    with pytest.raises(ValueError, match="must be|too large"):
        WebEnv(**knobs)


def test_bad_actions_are_observations_and_the_episode_goes_on():
    env = WebEnv(depth=2)
    env.reset(0)
    for action, expected in [("fly away", "invalid action"), ("click 99", "invalid action"),
                             ("back", "invalid action"), ("submit 123", "invalid action"),
                             ("search", "invalid action"), ("", "invalid action")]:
        step = env.step(action)
        assert step.observation.startswith(expected) and not step.done and step.info["invalid"]
    step = env.step("goto /nowhere")
    assert step.observation.startswith("404") and not step.done
    assert env.step("click 1").info["url"] != "/" and env.step("back").info["url"] == "/"


def test_answers_are_checked_exactly_and_a_distractor_code_scores_zero():
    site = generate_site(5, depth=2, distractors=2)
    env = WebEnv(depth=2, distractors=2)
    env.reset(5)
    wrong = next(i for i in site.items if i.name == site.target.name and i is not site.target)
    step = env.step(f"answer {wrong.code}")
    assert step.done and step.reward == 0.0
    env.reset(5)
    assert env.step(f"ANSWER {site.answer.lower()}.").reward == 1.0


def test_search_and_the_form_lead_to_the_code():
    site = generate_site(7, depth=3, distractors=2)
    env = ENVIRONMENTS.create("web", depth=3, distractors=2)
    env.reset(7)
    results = env.step(f"search {site.target.name}")
    assert all(i.url in results.observation for i in site.items if i.name == site.target.name)
    env.step("goto /form/serial")
    assert f"the code is {site.answer}" in env.step(f"submit {site.target.serial}").observation
