import pytest

from testtime.backends.base import Capabilities, UnsupportedCapability
from testtime.scale import get_strategy
from testtime.verifiers import get_verifier
from testtime.verifiers.base import Scores, Verifier

from .conftest import ScriptedGenerator
from .stepscript import tree_script

R1, W1 = "1+2=3\n", "1+2=4\n"
TABLE = {
    "": [W1 + "4+3=7\nanswer: 7\n", R1 + "3+3=6\nanswer: 6\n"],
    R1: ["3+3=7\nanswer: 7\n", "3+3=6\nanswer: 6\n"],
    W1: ["4+3=7\nanswer: 7\n"],
    R1 + "3+3=6\n": ["answer: 6\n"],
    R1 + "3+3=7\n": ["answer: 7\n"],
    W1 + "4+3=7\n": ["answer: 7\n"],
}


class OutcomeOnly(Verifier):
    name = "outcome"
    process = False

    def score(self, problem, solutions):
        return Scores([[0.5] for _ in solutions])


def run(problem, task, table=TABLE, **options):
    gen = ScriptedGenerator(tree_script(problem.prompt, table))
    strategy = get_strategy("beam", **options)
    res = strategy.solve([problem], gen, task, get_verifier("oracle", task=task))[0]
    return res, gen


def test_beam_keeps_the_top_scoring_prefixes(task, problem):
    res, gen = run(problem, task, n=4, width=2)
    # Iteration 1: four first steps (2 right, 2 wrong); the top N/M = 2 kept are the right ones.
    first_call_prompts, first_params = gen.calls[0]
    assert first_call_prompts == [problem.prompt] and first_params.n == 4
    assert first_params.stop == ("\n",)
    assert res.meta["kept_scores"][0] == [[1.0, 1.0]]
    # Iteration 2 expands each kept prefix into M = 2 continuations.
    prompts, params = gen.calls[1]
    assert prompts == [problem.prompt + R1] * 2 and params.n == 2
    assert res.answer == "6" and res.meta["score"] == 1.0
    assert all(c.text.startswith(R1) for c in res.candidates)
    assert len(res.candidates) >= 4 and all(c.meta["complete"] for c in res.candidates)


def test_beam_charges_every_generated_and_verifier_token(task, problem):
    res, gen = run(problem, task, n=4, width=2)
    # Scripted tokens are characters: re-derive the total from what was sampled.
    assert res.compute.model_calls == len(gen.calls)
    assert res.compute.generated_tokens > 0
    assert res.compute.prompt_tokens == sum(len(p) for ps, _ in gen.calls for p in ps)
    # oracle: zero verifier FLOPs, generator FLOPs = 2 * params * tokens
    assert res.compute.policy_flops == 2 * 1000 * (
        res.compute.prompt_tokens + res.compute.generated_tokens
    )


def test_lookahead_scores_the_rolled_prefix_but_commits_one_step(task, problem):
    # Greedy (T=0) continuation of the right first step goes wrong: with k = 1 the
    # right first step is scored by its rolled-out (wrong) second step.
    table = dict(TABLE)
    table[R1] = ["3+3=7\nanswer: 7\n", "3+3=6\nanswer: 6\n"]
    plain, _ = run(problem, task, table=table, n=4, width=2)
    look, gen = run(problem, task, table=table, n=4, width=2, lookahead=1)
    assert plain.meta["kept_scores"][0] == [[1.0, 1.0]]
    assert look.meta["kept_scores"][0] == [[0.0, 0.0]]
    greedy_calls = [ps for ps, params in gen.calls if params.temperature == 0]
    assert greedy_calls and greedy_calls[0] == [problem.prompt + W1, problem.prompt + R1] * 2
    # rollout tokens are charged although only the first step is committed
    assert look.compute.generated_tokens > plain.compute.generated_tokens


def test_last_iteration_generates_to_the_end(task, problem):
    res, gen = run(problem, task, n=2, width=2, max_steps=1)
    assert gen.calls[0][1].stop == ()
    assert {c.answer for c in res.candidates} == {"6", "7"}
    assert res.answer == "6"


def test_weighted_vote_selection(task, problem):
    res, _ = run(problem, task, n=4, width=2, select="vote")
    assert res.answer == "6" and res.meta["weighted_votes"]["6"] > 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n": 0}, "n must be"),
        ({"n": 6, "width": 4}, "must divide"),
        ({"lookahead": -1}, "lookahead"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        get_strategy("beam", **options)


def test_refuses_before_generating(task, problem):
    gen = ScriptedGenerator(tree_script(problem.prompt, TABLE))
    with pytest.raises(ValueError, match="outcome-only"):
        get_strategy("beam").solve([problem], gen, task, OutcomeOnly())
    with pytest.raises(ValueError, match="needs a verifier"):
        get_strategy("beam").solve([problem], gen, task, None)
    blind = ScriptedGenerator({}, capabilities=Capabilities(continuation=False))
    with pytest.raises(UnsupportedCapability, match="continuation"):
        get_strategy("beam").solve([problem], blind, task, get_verifier("oracle", task=task))
    oracle = get_verifier("oracle", task=task)
    task.has_step_checker = False  # e.g. a user's JSONL task without steps
    with pytest.raises(ValueError, match="no step checker"):
        get_strategy("beam").solve([problem], gen, task, oracle)
    assert gen.calls == []
