import math

import pytest

from testtime.scale.ttspm import fit_p, observed_knee, saturation_point


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
