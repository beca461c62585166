import re

import pytest

from testtime.backends.base import Completion, GenerationResult, Generator, Usage
from testtime.tasks.base import Problem
from testtime.verifiers import get_verifier
from testtime.verifiers.judge import parse_score, parse_verdict


class ScriptedGenerator(Generator):
    """A judge model: ``script(prompt)`` lists its judgments, cycled over the n samples;
    one token per character."""

    name = "scripted-judge"

    def __init__(self, script):
        self.script = script
        self.calls = []

    @property
    def num_parameters(self):
        return 1000

    def generate(self, prompts, params, *, cancel=None, on_finish=None):
        self.calls.append((list(prompts), params))
        rows, usage = [], Usage(sum(len(p) for p in prompts), 0, 1)
        for prompt in prompts:
            texts = self.script(prompt)
            rows.append(
                [
                    Completion(texts[j % len(texts)], "stop", len(texts[j % len(texts)]))
                    for j in range(params.n)
                ]
            )
            usage.completion_tokens += sum(c.num_tokens for c in rows[-1])
        return GenerationResult(rows, usage)


PROBLEM = Problem("p", "sum: 1 2 3\n", "6", "chain")
RIGHT = "1+2=3\n3+3=6\nanswer: 6"
WRONG = "1+2=3\n3+3=7\nanswer: 7"


def test_parsers():
    assert parse_score("looks fine.\nscore: 8") == 0.8
    assert parse_score("score: 3 ... on reflection score: **12**") == 1.0  # last one, clamped
    assert parse_score("no verdict") is None
    assert parse_verdict("A is sloppy. Verdict: [[B]]") == "B"
    assert parse_verdict("verdict: a") == "A"
    assert parse_verdict("verdict: C") is None


def pointwise_judge(prompt):
    if RIGHT in prompt:
        return ["correct\nscore: 9", "score: 7", "I am unsure"]  # the last abstains
    if WRONG in prompt:
        return ["step 2 is wrong\nscore: 1"]
    return ["hmm"]


def test_pointwise_mean_of_n_judgments():
    gen = ScriptedGenerator(pointwise_judge)
    judge = get_verifier("judge", generator=gen, judgments=3)
    assert not judge.process
    scores = judge.score(PROBLEM, [RIGHT, WRONG, "gibberish"])
    assert scores.steps == [[pytest.approx(0.8)], [pytest.approx(0.1)], [0.5]]
    ((prompts, params),) = gen.calls
    assert params.n == 3 and len(prompts) == 3
    # the judge's prompt and generated tokens are verifier compute
    judged = sum(len(p) for p in prompts)
    assert scores.tokens > judged and scores.calls == 1
    assert judge.num_parameters == 1000


def responses(prompt):
    a = re.search(r"Response A:\n(.*?)\nResponse B:", prompt, re.S).group(1)
    b = re.search(r"Response B:\n(.*?)\nJudgment:", prompt, re.S).group(1)
    return a, b


def test_pairwise_both_orders_and_majority():
    def fair(prompt):
        a, b = responses(prompt)
        return ["verdict: A" if a == RIGHT else "verdict: B" if b == RIGHT else "verdict: A"]

    gen = ScriptedGenerator(fair)
    judge = get_verifier("judge", generator=gen, mode="pairwise", judgments=2)
    scores = judge.score(PROBLEM, [WRONG, RIGHT, WRONG])
    ((prompts, _),) = gen.calls
    assert len(prompts) == 6  # 3 pairs x 2 orders
    orders = {responses(p) for p in prompts}
    assert (WRONG, RIGHT) in orders and (RIGHT, WRONG) in orders
    # RIGHT wins both its pairs; the two WRONGs split their pair.
    assert [s[0] for s in scores.steps] == [0.25, 1.0, 0.25]


def test_position_bias_cancels_out():
    gen = ScriptedGenerator(lambda prompt: ["verdict: A"])  # always prefers the first shown
    judge = get_verifier("judge", generator=gen, mode="pairwise")
    assert judge.score(PROBLEM, [RIGHT, WRONG]).steps == [[0.5], [0.5]]


def test_bad_configuration():
    with pytest.raises(ValueError, match="needs a judge model"):
        get_verifier("judge")
    with pytest.raises(ValueError, match="mode"):
        get_verifier("judge", generator=ScriptedGenerator(lambda p: [""]), mode="listwise")
    with pytest.raises(ValueError, match="judgments"):
        get_verifier("judge", generator=ScriptedGenerator(lambda p: [""]), judgments=0)
