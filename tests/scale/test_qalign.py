import math

import pytest

from testtime.backends.base import Capabilities
from testtime.scale import get_strategy
from testtime.scale.qalign import Cutter, log_acceptance, resolve_unit, step_starts
from testtime.verifiers import get_verifier
from testtime.verifiers.base import Scores, Verifier

from .conftest import ScriptedGenerator

RIGHT = "1+2=3\n3+3=6\nanswer: 6\n"
WRONG = "1+2=4\n4+3=7\nanswer: 7\n"


def test_acceptance_ratio():
    # (r' - r)/beta + log|y| - log|y'|
    assert log_acceptance(0.2, 0.7, 10, 20, 0.5) == pytest.approx(1.0 + math.log(0.5))
    assert log_acceptance(0.5, 0.5, 7, 7, 1.0) == 0.0
    # clamped to +-20
    assert log_acceptance(0.0, 1.0, 5, 5, 0.01) == 20.0
    assert log_acceptance(1.0, 0.0, 5, 5, 0.01) == -20.0


def test_cut_units():
    text = "ab\ncd\nanswer: 6\n"
    assert step_starts(text) == [0, 3, 6]
    step = Cutter("step", None)
    assert step.length(text) == 3 and step.prefix(text, 1) == "ab\n" and step.prefix(text, 0) == ""
    char = Cutter("char", None)
    assert char.length(text) == len(text) and char.prefix(text, 4) == "ab\nc"
    # two characters per token: the longest prefix with at most i tokens
    tok = Cutter("token", lambda t: (len(t) + 1) // 2)
    assert (
        tok.length("abcde") == 3
        and tok.prefix("abcde", 2) == "abcd"
        and tok.prefix("abcde", 0) == ""
    )


def test_unit_resolution():
    gen = ScriptedGenerator({})
    assert resolve_unit("auto", gen).unit == "token"

    class NoTokenizer(ScriptedGenerator):
        def count_tokens(self, text):
            raise NotImplementedError

    assert resolve_unit("auto", NoTokenizer({})).unit == "step"
    with pytest.raises(ValueError, match="counts tokens"):
        resolve_unit("token", NoTokenizer({}))


def script(prompt):
    """The LM: from the start mostly wrong; from a correct prefix, right."""

    def continuations(full):
        partial = full[len(prompt) :]
        if RIGHT.startswith(partial) and partial:
            return [RIGHT[len(partial) :]]
        if WRONG.startswith(partial) and partial:
            return [WRONG[len(partial) :]]
        return [WRONG, WRONG, WRONG, RIGHT]

    return continuations


class Counting(ScriptedGenerator):
    """Sums the completion tokens every call reported."""

    sampled = 0

    def generate(self, prompts, params, **kw):
        result = super().generate(prompts, params, **kw)
        self.sampled += result.usage.completion_tokens
        return result


def run(problem, task, **options):
    gen = Counting(script(problem.prompt))
    strategy = get_strategy("qalign", **options)
    return strategy.solve([problem], gen, task, get_verifier("oracle", task=task))[0], gen


def test_chain_moves_to_high_reward_and_stays(task, problem):
    # The LM writes the wrong solution 3 times in 4: majority voting over its samples
    # says 7, the reward-tilted chain, once it finds 6, keeps it.
    res, gen = run(problem, task, n=64, beta=0.05, unit="step")
    assert res.answer == "6" and res.meta["votes"]["6"] > res.meta["votes"]["7"]
    assert res.meta["by_steps"][1]["answer"] == "7"
    assert sorted(res.meta["by_steps"]) == [1, 2, 4, 8, 16, 32, 64]
    # Every proposal's tokens are charged, rejected ones included.
    assert (
        res.compute.generated_tokens == gen.sampled == res.meta["by_steps"][64]["generated_tokens"]
    )
    assert res.compute.model_calls == 65 == len(gen.calls)
    assert sum(c.meta["visits"] for c in res.candidates) == 65  # y_0..y_64


def test_chain_is_reproducible_with_a_seed(task, problem):
    a, _ = run(problem, task, n=16, seed=3, unit="char")
    b, _ = run(problem, task, n=16, seed=3, unit="char")
    c, _ = run(problem, task, n=16, seed=4, unit="char")
    assert a.meta == b.meta and [x.text for x in a.candidates] == [x.text for x in b.candidates]
    assert a.compute.generated_tokens == b.compute.generated_tokens
    assert a.compute.generated_tokens != c.compute.generated_tokens  # other cut indices


def test_equal_rewards_accept_by_length_ratio(task, problem):
    # With beta huge, alpha = |y|/|y'|: proposals no longer than the state are always accepted.
    res, _ = run(problem, task, n=8, beta=1e9, unit="step")
    assert res.meta["acceptance_rate"] == 1.0  # all solutions have 3 steps


def test_bad_options(task, problem):
    with pytest.raises(ValueError, match="beta"):
        get_strategy("qalign", beta=0)
    with pytest.raises(ValueError, match="unit"):
        get_strategy("qalign", unit="word")
    with pytest.raises(ValueError, match="needs a verifier"):
        get_strategy("qalign").solve([problem], ScriptedGenerator({}), task, None)
    blind = ScriptedGenerator({}, capabilities=Capabilities(continuation=False))
    with pytest.raises(Exception, match="continuation"):
        get_strategy("qalign").solve([problem], blind, task, get_verifier("oracle", task=task))


def test_rewards_are_log_odds_by_default():
    from testtime.scale.qalign import to_reward

    assert to_reward(0.5, "logit") == 0.0
    assert to_reward(0.9, "logit") == pytest.approx(math.log(9))
    assert to_reward(1.0, "logit") == pytest.approx(math.log((1 - 1e-4) / 1e-4))  # clamped, finite
    assert to_reward(0.9, "prob") == 0.9
    with pytest.raises(ValueError, match="reward"):
        get_strategy("qalign", reward="rank")


class Graded(Verifier):
    """A calibrated-looking verifier: P(right) 0.7 for the right solution, 0.4 otherwise."""

    name = "graded"

    def score(self, problem, solutions):
        return Scores([[0.7 if s == RIGHT else 0.4] for s in solutions])


def test_acceptance_rate_responds_to_beta(task, problem):
    """A sharper tilt (small beta) rejects moves to lower reward: fewer acceptances."""

    def rate(**options):
        strategy = get_strategy("qalign", n=48, unit="step", **options)
        result = strategy.solve([problem], ScriptedGenerator(script(problem.prompt)), task, Graded())[0]
        return result.meta["acceptance_rate"]

    rates = [rate(beta=beta) for beta in (0.1, 1.0, 100.0)]
    assert rates[0] < rates[1] < rates[2]
    # On the probability scale the same beta tilts less (|r' - r| <= 0.3 here, vs 1.25 in log-odds).
    assert rate(beta=0.3, reward="prob") > rate(beta=0.3)


def test_the_harness_reports_the_acceptance_rate(task, tmp_path):
    from testtime.scale.harness import scale

    def lm(full):
        partial = full.split("\n", 1)[1]
        return [RIGHT[len(partial):]] if RIGHT.startswith(partial) and partial else [WRONG, RIGHT]

    out = scale(task, ScriptedGenerator(lm), ["qalign"], [4], tmp_path, verifier=Graded(),
                difficulties=[3], limit=2, options={"unit": "step"}, show_progress=False)
    [row] = out.rows
    assert 0.0 <= row["acceptance_rate"] <= 1.0
