import pytest
from conftest import FunctionGenerator

from testtime.agents import BFSPolicy, GeneratorPolicy, LoopOptions, run_episode
from testtime.agents.policy import Trajectory, Turn, extract_action
from testtime.agents.site import generate_site
from testtime.agents.web import WebEnv


def test_extract_action_takes_the_last_action_line_else_the_first_line():
    assert extract_action("hmm\nAction: click 2\nmore\naction:  back ") == "back"
    assert extract_action("\n  click 3\nAction") == "click 3"
    assert extract_action("") == ""


def test_unparseable_output_is_a_counted_step_never_a_crash():
    gen = FunctionGenerator(lambda prompt: "I like turtles very much")
    episode = run_episode(WebEnv(), GeneratorPolicy(gen, step_tokens=3), 0, LoopOptions(horizon=4))
    assert episode.ended == "horizon" and not episode.success
    assert episode.ledger.steps == 4 and episode.ledger.invalid_steps == 4
    assert episode.ledger.step_tokens == [3, 3, 3, 3]  # the per-step budget caps reasoning
    assert all(t["observation"].startswith("invalid action") for t in episode.turns)
    assert episode.ledger.compute.generated_tokens == 12 and episode.ledger.compute.model_calls == 4


def test_a_generator_policy_that_follows_the_format_solves_the_task():
    """The model's replies come from the BFS script, so only the loop/prompt/parse path is tested."""
    site, bfs = generate_site(2, depth=2), BFSPolicy()

    def reply(prompt: str) -> str:
        first = prompt.split("Start:\n", 1)[1].split("\n\nThought:")[0]
        if "\nObservation:\n" not in prompt:
            bfs.start(first)
        last = prompt.rsplit("Observation:\n", 1)[-1].rsplit("\n\nThought:", 1)[0]
        t = Trajectory(first, "", [Turn("", "", last)] if "\nObservation:\n" in prompt else [])
        return f"thinking\nAction: {bfs.act(t, 0).action}"

    gen = FunctionGenerator(reply)
    episode = run_episode(WebEnv(depth=2), GeneratorPolicy(gen, window=1), 2, LoopOptions(horizon=60))
    assert episode.success and episode.answer == site.answer
    assert episode.ledger.steps == len(gen.prompts) and episode.ledger.reasoning_tokens > 0


def test_check_again_intercepts_answers_and_costs_steps():
    plain = run_episode(WebEnv(), BFSPolicy(), 1, LoopOptions(horizon=60))
    cued = run_episode(WebEnv(), BFSPolicy(), 1, LoopOptions(horizon=60, check_again=2))
    assert cued.success and cued.cues == 2 and cued.ledger.steps == plain.ledger.steps + 2
    assert "check again" in cued.turns[-2]["observation"]


def test_the_horizon_cuts_an_episode_and_announce_shows_steps_left():
    assert run_episode(WebEnv(depth=3), BFSPolicy(), 0, LoopOptions(horizon=3)).ended == "horizon"
    gen = FunctionGenerator(lambda prompt: "Action: back")
    run_episode(WebEnv(), GeneratorPolicy(gen), 0, LoopOptions(horizon=3, announce=True))
    assert "(3 step(s) left)" in gen.prompts[0] and "(1 step(s) left)" in gen.prompts[2]


def test_episodes_are_deterministic_given_the_seed():
    gen = FunctionGenerator(lambda prompt: f"Action: click {len(prompt) % 3 + 1}")
    a = run_episode(WebEnv(), GeneratorPolicy(gen), 4, LoopOptions(horizon=6)).to_dict()
    b = run_episode(WebEnv(), GeneratorPolicy(gen), 4, LoopOptions(horizon=6)).to_dict()
    assert a == b and a["ledger"]["steps"] == 6


def test_prompts_are_fitted_to_the_context_oldest_turns_first():
    gen = FunctionGenerator(lambda prompt: "Action: click 1")
    policy = GeneratorPolicy(gen, step_tokens=8, window=4, context=150)
    run_episode(WebEnv(depth=3), policy, 0, LoopOptions(horizon=5))
    assert all(gen.count_tokens(p) <= 150 - 8 - 1 for p in gen.prompts)
    assert "Task:" in gen.prompts[-1] and "not shown" in gen.prompts[-1]  # the task stays
    roomy = FunctionGenerator(lambda prompt: "Action: click 1")
    run_episode(WebEnv(depth=3), GeneratorPolicy(roomy, window=4), 0, LoopOptions(horizon=5))
    assert roomy.prompts[-1].count("Observation:") == 4  # no context: the whole window
    tight = FunctionGenerator(lambda prompt: "Action: click 1")
    run_episode(WebEnv(depth=3), GeneratorPolicy(tight, step_tokens=8, context=60), 0,
                LoopOptions(horizon=2))
    assert all(p.startswith("(cut to fit") and len(p.split()) <= 51 for p in tight.prompts)
    with pytest.raises(ValueError, match="no room"):
        GeneratorPolicy(gen, step_tokens=64, context=70)


def test_a_context_without_token_counts_is_a_clear_error():
    class Uncounted(FunctionGenerator):
        def count_tokens(self, text: str) -> int:
            raise NotImplementedError("no tokenizer")

    with pytest.raises(ValueError, match="needs token counts: no tokenizer"):
        GeneratorPolicy(Uncounted(lambda p: ""), context=512)
    GeneratorPolicy(Uncounted(lambda p: ""))  # no context: nothing to count
