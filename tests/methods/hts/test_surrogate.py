"""S_S and S_T: pySOT's cubic RBF with a linear tail, its well-posedness checks, the designs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from transfertune.errors import ConfigurationError
from transfertune.methods.hts.surrogate import (
    affine_rank,
    cubic_rbf,
    fit_rbf,
    latin_hypercube,
    maximin_latin_hypercube,
    numpy_global_rng,
    predict,
    tail_columns,
)


def reference_rbf(X: np.ndarray, f: np.ndarray, Z: np.ndarray, columns: np.ndarray, eta: float = 1e-6) -> np.ndarray:
    """The interpolant solved directly: [[0, P^T], [P, Phi + eta I]] [c; lambda] = [0; f], phi(r) = r^3."""
    Phi = cdist(X, X) ** 3 + eta * np.eye(len(X))
    P = np.hstack([np.ones((len(X), 1)), X[:, columns]])
    n, t = len(X), P.shape[1]
    A = np.block([[np.zeros((t, t)), P.T], [P, Phi]])
    coef = np.linalg.solve(A, np.concatenate([np.zeros(t), f]))
    tail, lam = coef[:t], coef[t:]
    return (cdist(Z, X) ** 3) @ lam + np.hstack([np.ones((len(Z), 1)), Z[:, columns]]) @ tail


def test_tail_columns_drop_the_first_one_hot_column_of_each_categorical(cnn_space, hyperrec_space):
    assert tail_columns(cnn_space).tolist() == list(range(8))
    names = hyperrec_space.column_names
    kept = [names[i] for i in tail_columns(hyperrec_space)]
    assert len(names) == 23 and len(kept) == 20
    assert "model=resnet34" not in kept and "model=resnet50" in kept
    assert "optimizer=Adam" not in kept and "optimizer=SGD" in kept
    assert "scheduler=StepLR" not in kept and {"scheduler=ExponentialLR", "scheduler=CyclicLR", "scheduler=CosineAnnealingWarmRestarts"} <= set(kept)
    assert {"batchsize", "lr", "cawr_eta_min"} <= set(kept)


def test_the_surrogate_is_the_cubic_rbf_with_a_linear_tail(cnn_space):
    rng = np.random.default_rng(0)
    X, Z = rng.random((20, 8)), rng.random((50, 8))
    f = rng.normal(size=20)
    surrogate = fit_rbf(cnn_space, X, f, "test")
    np.testing.assert_allclose(predict(surrogate, Z), reference_rbf(X, f, Z, np.arange(8)), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(predict(surrogate, X), f, atol=1e-4)  # an interpolant (up to pySOT's eta)


def test_a_linear_function_is_reproduced_everywhere(cnn_space):
    """With a linear tail, f = a + b^T x is reproduced exactly; a constant tail (or a tail
    missing a column) would not."""
    rng = np.random.default_rng(1)
    X, Z = rng.random((12, 8)), rng.random((30, 8))
    b = rng.normal(size=8)
    surrogate = fit_rbf(cnn_space, X, 0.3 + X @ b, "test")
    np.testing.assert_allclose(predict(surrogate, Z), 0.3 + Z @ b, atol=1e-6)


def test_categorical_one_hots_fit_with_the_reduced_tail(hyperrec_space):
    configs = hyperrec_space.sample(40, seed=3)
    X = hyperrec_space.encode(configs)
    full = np.hstack([np.ones((40, 1)), X])
    assert np.linalg.matrix_rank(full) < full.shape[1]  # pySOT's plain LinearTail: the system is singular
    f = np.random.default_rng(0).normal(size=40)
    surrogate = fit_rbf(hyperrec_space, X, f, "test")
    columns = tail_columns(hyperrec_space)
    np.testing.assert_allclose(predict(surrogate, X[:10]), reference_rbf(X, f, X[:10], columns), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predict(surrogate, X), f, atol=1e-4)


def test_too_few_or_degenerate_points_are_one_line_errors(cnn_space):
    rng = np.random.default_rng(2)
    with pytest.raises(ConfigurationError, match=r"^the source: 8 observation\(s\) span an affine space of dimension 7.*d \+ 1 = 9") as err:
        fit_rbf(cnn_space, rng.random((8, 8)), rng.random(8), "the source")
    assert "\n" not in str(err.value)
    flat = rng.random((30, 8))
    flat[:, 3] = 0.5  # 30 points, all in one hyperplane
    with pytest.raises(ConfigurationError, match="dimension 7"):
        fit_rbf(cnn_space, flat, rng.random(30), "the source")
    fit_rbf(cnn_space, rng.random((9, 8)), rng.random(9), "the source")  # d + 1 in general position: enough
    with pytest.raises(ConfigurationError, match="1 of 9 values are not finite"):
        fit_rbf(cnn_space, rng.random((9, 8)), np.r_[rng.random(8), np.nan], "the source")


def test_affine_rank():
    assert affine_rank(np.zeros((0, 3)), np.arange(3)) == -1
    assert affine_rank(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.arange(3)) == 2
    assert affine_rank(np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.arange(3)) == 1


def test_latin_hypercube_has_one_sample_per_stratum_and_follows_its_seed(cnn_space):
    design = maximin_latin_hypercube(cnn_space, 9, np.random.default_rng(5))
    floats = [i for i, hp in enumerate(cnn_space.hyperparameters) if hp.type == "float"]
    for j in floats:
        assert sorted(np.floor(design[:, j] * 9).astype(int)) == list(range(9))
    assert affine_rank(design, tail_columns(cnn_space)) == 8
    np.testing.assert_array_equal(design, maximin_latin_hypercube(cnn_space, 9, np.random.default_rng(5)))
    assert not np.array_equal(design, maximin_latin_hypercube(cnn_space, 9, np.random.default_rng(6)))
    integers = [i for i, hp in enumerate(cnn_space.hyperparameters) if hp.type == "integer"]
    decoded = cnn_space.decode(design)
    assert all(float(c["fc1_units"]).is_integer() for c in decoded) and integers  # snapped to configs
    spread = min(np.min(cdist(d, d) + np.eye(9) * 9) for d in [latin_hypercube(cnn_space, 9, np.random.default_rng(s)) for s in range(20)])
    assert np.min(cdist(design, design) + np.eye(9) * 9) >= spread  # the most spread of its candidates


def test_numpy_global_rng_runs_pysot_on_its_own_state():
    np.random.seed(123)
    expected_caller = np.random.random()
    np.random.seed(123)
    state = np.random.RandomState(7)
    with numpy_global_rng(state):
        first = np.random.random(3)
    assert np.random.random() == expected_caller  # the caller's generator is untouched
    with numpy_global_rng(state):
        second = np.random.random(3)
    reference = np.random.RandomState(7)
    np.testing.assert_array_equal(np.r_[first, second], reference.random(6))  # and the state went on


def test_cubic_rbf_is_empty_and_on_the_unit_cube(cnn_space):
    surrogate = cubic_rbf(cnn_space)
    assert surrogate.num_pts == 0 and surrogate.dim == 8
    np.testing.assert_array_equal(surrogate.lb, np.zeros(8))
    np.testing.assert_array_equal(surrogate.ub, np.ones(8))
