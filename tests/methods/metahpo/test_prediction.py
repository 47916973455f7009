"""L-BFGS over the hyperparameters: the optimum of a known quadratic hp-learner, rounding of
discrete hyperparameters, the trust region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo.prediction import lbfgs_maximise, predict_config

FLOATS = SearchSpace.from_dict({"name": "q", "hyperparameters": [
    {"name": "a", "type": "float", "lower": 0.0, "upper": 1.0},
    {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "log": True},
    {"name": "b", "type": "float", "lower": -2.0, "upper": 2.0},
]})
MIXED = SearchSpace.from_dict({"name": "m", "hyperparameters": [
    {"name": "width", "type": "integer", "lower": 1, "upper": 9},
    {"name": "act", "type": "categorical", "choices": ["relu", "tanh", "gelu"]},
    {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "log": True},
]})


def quadratic(optimum: np.ndarray, scale: np.ndarray | None = None):
    """A known hp-learner: ``y_hat(theta) = 1 - sum_j s_j (theta_j - theta*_j)^2``."""
    target = torch.as_tensor(optimum, dtype=torch.float64)
    s = torch.ones_like(target) if scale is None else torch.as_tensor(scale, dtype=torch.float64)
    return lambda theta: 1.0 - (s * (theta.double() - target) ** 2).sum(-1)


def test_lbfgs_finds_the_optimum_of_a_known_quadratic_learner():
    optimum = np.array([0.3, 0.7, 0.55])
    prediction = predict_config(quadratic(optimum, np.array([1.0, 10.0, 0.1])), FLOATS, n_best_starts=0, n_random_starts=3, seed=1)
    np.testing.assert_allclose(prediction.unit, optimum, atol=1e-4)
    assert prediction.predicted == pytest.approx(1.0, abs=1e-7)
    assert prediction.config["lr"] == pytest.approx(10 ** (-4 + 3 * 0.7), rel=1e-3)  # decoded on the log scale


def test_an_optimum_outside_the_cube_ends_on_its_face():
    ends, values = lbfgs_maximise(quadratic(np.array([1.4, 0.5])), np.array([[0.2, 0.2]]))
    np.testing.assert_allclose(ends[0], [1.0, 0.5], atol=1e-6)
    assert values[0] == pytest.approx(1.0 - 0.16, abs=1e-8)


def test_discrete_hyperparameters_are_relaxed_then_rounded():
    # width: unit 0.4 is 1 + 0.4 * 8 = 4.2 -> rounds to 4; act: the one-hot block peaks at 'gelu'
    optimum = np.array([0.4, 0.0, 0.2, 0.9, 0.5])
    prediction = predict_config(quadratic(optimum), MIXED, n_best_starts=0, n_random_starts=4)
    assert prediction.config["width"] == 4
    assert prediction.config["act"] == "gelu"
    assert prediction.relaxed_predicted == pytest.approx(1.0, abs=1e-6)
    assert MIXED.problems(prediction.config) == []
    # the rounded config is re-scored: its value is the learner's at the rounded encoding
    rounded = torch.as_tensor(MIXED.encode([prediction.config]))
    assert prediction.predicted == pytest.approx(float(quadratic(optimum)(rounded)[0]))


def test_local_region_keeps_each_run_near_its_start():
    observed = np.array([[0.1, 0.1, 0.5], [0.9, 0.2, 0.5]])
    prediction = predict_config(quadratic(np.array([0.5, 0.5, 0.5])), FLOATS, observed, np.array([0.3, 0.2]), n_best_starts=2,
                                n_random_starts=5, region="local", region_radius=0.1)
    # each run moves at most 0.1 per coordinate: (0.2, 0.2) from the first start (1 - 0.18), (0.8, 0.3)
    # from the second (1 - 0.13, the better one); the whole cube would reach (0.5, 0.5)
    np.testing.assert_allclose(prediction.unit, [0.8, 0.3, 0.5], atol=1e-6)
    assert prediction.starts == 2  # random starts are not used in a local search


def test_bad_prediction_settings_are_one_line():
    with pytest.raises(ConfigurationError, match="region must be 'box' or 'local'"):
        predict_config(quadratic(np.zeros(3)), FLOATS, region="ball")
    with pytest.raises(ConfigurationError, match="needs observed configs"):
        predict_config(quadratic(np.zeros(3)), FLOATS, region="local")
    with pytest.raises(ConfigurationError, match="encodes to 3"):
        predict_config(quadratic(np.zeros(2)), FLOATS, np.zeros((2, 2)), np.zeros(2), n_random_starts=0)
