from testtime.backends.base import Completion, SamplingParams
from testtime.scale.base import Candidate, Compute
from testtime.scale.common import (
    best_scored,
    derive_seed,
    sample_candidates,
    score_candidates,
    to_candidate,
    vote,
)
from testtime.verifiers.oracle import OracleVerifier

from .conftest import ScriptedGenerator

RIGHT = "1+2=3\n3+3=6\nanswer: 6\n"
WRONG = "1+2=4\n4+3=7\nanswer: 7\n"


def cand(answer, score=None):
    return Candidate(text=f"answer: {answer}", answer=answer, num_tokens=3, step_scores=score)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "p1") == derive_seed(0, "p1")
    assert derive_seed(0, "p1") != derive_seed(0, "p2")
    assert derive_seed(None, "p1") is None


def test_cancelled_completion_has_no_answer(task):
    c = to_candidate(Completion("1+2=3\nanswer: 1", "cancelled", 15), task)
    assert c.answer is None
    assert to_candidate(Completion("answer: 15", "stop", 10, [-1.0, -3.0]), task).mean_logprob == -2.0


def test_sample_candidates_charges_usage_and_keeps_prefix(task, problem):
    gen = ScriptedGenerator({problem.prompt + "1+2=3\n": ["3+3=6\nanswer: 6\n"]})
    compute = Compute()
    params = SamplingParams(n=2, temperature=1.0, max_tokens=50)
    cands = sample_candidates(gen, problem, task, params, compute, prefix="1+2=3\n")
    assert [c.answer for c in cands] == ["6", "6"]
    assert cands[0].text == "1+2=3\n3+3=6\nanswer: 6\n"
    assert compute.generated_tokens == 2 * len("3+3=6\nanswer: 6\n")
    assert compute.prompt_tokens == len(problem.prompt) + 6
    assert compute.model_calls == 1
    assert compute.policy_flops == 2.0 * 1000 * (compute.prompt_tokens + compute.generated_tokens)


def test_vote_groups_and_breaks_ties_by_first_seen(task, problem):
    cands = [cand("7"), cand("6"), cand("6"), cand(None), cand("7")]
    answer, tally = vote(cands, problem, task)
    assert tally == {"7": 2.0, "6": 2.0}
    assert answer == "7"
    answer, tally = vote(cands, problem, task, weights=[0.1, 0.5, 0.5, 9.0, 0.1])
    assert answer == "6" and tally["6"] == 1.0


def test_score_candidates_and_best(task, problem):
    cands = [to_candidate(Completion(t, "stop", len(t)), task) for t in (WRONG, RIGHT)]
    compute = Compute()
    score_candidates(cands, problem, OracleVerifier(task), compute, "last")
    assert cands[0].step_scores == [0.0, 0.0] and cands[1].step_scores == [1.0, 1.0]
    assert best_scored(cands, "last") is cands[1]
    assert compute.verifier_tokens == 0 and compute.verifier_flops == 0.0


def test_apportion_and_split_usage_are_exact():
    from testtime.backends.base import Usage
    from testtime.scale.common import apportion, split_usage

    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(apportion(7, [0.2, 0.5, 0.3])) == 7 and apportion(0, [1, 2]) == [0, 0]
    comps = [[Completion("a" * 5, "stop", 5)] * 2, [Completion("b" * 20, "stop", 20)]]
    parts = split_usage(Usage(30, 30, 1), ["x" * 10, "y" * 20], comps)
    assert [(u.prompt_tokens, u.completion_tokens) for u in parts] == [(10, 10), (20, 20)]
    assert sum(u.calls for u in parts) == 1
