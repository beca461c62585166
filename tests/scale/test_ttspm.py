import math

import numpy as np
import pytest

from testtime.scale.ttspm import (
    fit_p,
    mixture_coverage,
    mixture_saturation_point,
    observed_knee,
    saturation_point,
)
from testtime.zoo.reasoner_sampling import pass_at_k


def test_fit_p_recovers_the_model_parameter():
    curve = {n: 1 - (1 - 0.3) ** n for n in (1, 2, 4, 8)}
    assert fit_p(curve) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        fit_p({8: 0.9})


def test_saturation_point_is_where_the_marginal_gain_drops_below_epsilon():
    p, eps = 0.3, 0.01
    n_star = saturation_point(p, eps)
    assert p * (1 - p) ** n_star < eps <= p * (1 - p) ** (n_star - 1)
    assert n_star == math.ceil(math.log(eps / p) / math.log(1 - p))
    assert saturation_point(0.0, eps) is None and saturation_point(1.0, eps) == 1


def test_observed_knee_on_a_model_curve_matches_the_prediction_scale():
    curve = {n: 1 - 0.7**n for n in (1, 2, 4, 8, 16, 32)}
    # gains per added sample: .21, .125, .046, .0068 -> first below 0.01 after N = 8
    assert observed_knee(curve, 0.01) == 8
    assert observed_knee({1: 0.1, 2: 0.5}, 0.01) is None


def test_per_problem_mixture_predicts_coverage_on_a_dense_grid():
    """Heterogeneous problems (a hard and an easy half): one p fitted on N <= 4
    over-predicts coverage at large N; the per-problem mixture tracks every N in 1..48."""
    rng = np.random.default_rng(0)
    truth = np.concatenate([rng.uniform(0.005, 0.05, 60), rng.uniform(0.5, 0.9, 60)])
    pool = 96
    correct = rng.binomial(pool, truth)
    grid = range(1, 49)
    observed = {n: float(np.mean([pass_at_k(pool, int(c), n) for c in correct])) for n in grid}
    single = fit_p({n: observed[n] for n in (1, 2, 4)})
    mixture = [c / pool for c in correct]
    single_err = max(abs(1 - (1 - single) ** n - observed[n]) for n in grid)
    mixture_err = max(abs(mixture_coverage(mixture, n) - observed[n]) for n in grid)
    assert mixture_err < 0.05 < single_err
    # the mixture's saturation point is where its mean marginal gain drops below epsilon
    n_star = mixture_saturation_point(mixture, 0.002)
    gain = lambda n: np.mean([p * (1 - p) ** n for p in mixture])  # noqa: E731
    assert gain(n_star) < 0.002 <= gain(n_star - 1)
    assert mixture_saturation_point([0.0, 0.0], 0.01) is None
