import numpy as np
import pytest

from testtime.backends.base import Capabilities, UnsupportedCapability
from testtime.scale import get_strategy
from testtime.scale.base import Candidate
from testtime.scale.rpc import fit_weibull_mixture, perplexity_consistency, prune_mask

from .conftest import ScriptedGenerator

RIGHT = ["1+2=3\n3+3=6\nanswer: 6\n", "1+2=3\n3+3=6\n\nanswer: 6\n"]
WRONG = [f"1+2=3\n3+3=5\n{' ' * i}\nanswer: 5\n" for i in range(3)]


def test_weibull_mixture_separates_two_modes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.weibull(8.0, 60) * 0.9, rng.weibull(3.0, 40) * 0.2])
    w, k1, l1, k2, l2 = fit_weibull_mixture(x)
    assert 0.2 <= w <= 0.8
    assert sorted([l1, l2])[0] < 0.35 and sorted([l1, l2])[1] > 0.7


def test_prune_mask_drops_low_probability_paths_only():
    p = [0.9, 0.92, 0.88, 0.91, 0.86, 0.2, 0.25, 0.22]
    keep = prune_mask(p)
    assert keep.tolist() == [True] * 5 + [False] * 3
    assert prune_mask([0.5, 0.5, 0.5]).all()  # nothing to separate


def test_perplexity_consistency_counts_unique_strings_once(task, problem):
    cands = [Candidate("a", "6", 1), Candidate("a", "6", 1), Candidate("b", "5", 1), Candidate("c", "5", 1)]
    mass = perplexity_consistency(cands, [0.9, 0.9, 0.5, 0.5], problem, task)
    assert mass == {"6": ("6", 0.9), "5": ("5", 1.0)}


def test_rpc_beats_majority_when_wrong_paths_are_improbable(task, problem):
    texts = WRONG + RIGHT
    logprob = {t: -2.0 for t in WRONG} | {t: -0.05 for t in RIGHT}
    gen = ScriptedGenerator({problem.prompt: texts}, logprob=logprob.__getitem__)
    assert get_strategy("majority", n=5).solve([problem], gen, task)[0].answer == "5"
    res = get_strategy("rpc", n=5).solve([problem], gen, task)[0]
    assert res.answer == "6"
    assert res.meta["pruned"] == 3 and res.meta["confidence"] == pytest.approx(1.0)
    assert gen.calls[-1][1].logprobs


def test_rpc_refuses_backends_without_logprobs(task, problem):
    gen = ScriptedGenerator({problem.prompt: RIGHT}, capabilities=Capabilities(logprobs=False))
    with pytest.raises(UnsupportedCapability, match="logprobs"):
        get_strategy("rpc").solve([problem], gen, task)
    assert gen.calls == []
