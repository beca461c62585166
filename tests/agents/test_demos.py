import pytest
from conftest import FunctionGenerator

from testtime.agents import GeneratorPolicy, LoopOptions, run_episode
from testtime.agents.demos import demonstrations
from testtime.agents.policy import extract_action
from testtime.agents.web import WebEnv


def test_demonstrations_replayed_as_a_model_solve_the_episode():
    """A 'model' that answers each prompt with its demo completion must solve the task:
    the demos are the policy's own prompts, so they teach exactly the format it reads."""
    env = WebEnv(depth=2)
    demos = list(demonstrations(env, [3], window=2, limit=200, count=lambda t: len(t.split())))
    assert all(len(d["prompt"].split()) <= 200 for d in demos)
    assert all(extract_action(d["completion"]) for d in demos)
    table = {d["prompt"]: d["completion"] for d in demos}
    gen = FunctionGenerator(lambda prompt: table[prompt])
    policy = GeneratorPolicy(gen, step_tokens=32, window=2, context=200 + 32 + 1)
    episode = run_episode(env, policy, 3, LoopOptions(horizon=len(demos)))
    assert episode.success and episode.ledger.steps == len(demos)


def test_limit_and_count_go_together():
    with pytest.raises(ValueError, match="both limit and count"):
        next(demonstrations(WebEnv(), [0], limit=100))
