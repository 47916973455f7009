"""Eq. 6-8: the mean and conditional embeddings against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfertune.errors import ConfigurationError
from transfertune.methods.metahpo.meta_features import (
    conditional_embedding,
    conditional_embedding_gram,
    label_embedding,
    mean_embedding,
    meta_feature,
)


def test_mean_embedding_is_the_average_feature_vector():
    F = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    np.testing.assert_allclose(mean_embedding(F), [3.0, 3.0])


def test_conditional_embedding_matches_a_direct_kernel_computation():
    """mu_{Y|X} phi(x) = sum_i beta_i(x) psi(y_i), beta(x) = (K + lambda I)^{-1} k_x, with the linear
    kernel k(a, b) = phi(a) . phi(b) built entry by entry (Song et al. 2009)."""
    rng = np.random.default_rng(0)
    m, d, c, lam = 5, 3, 2, 0.7
    F = rng.normal(size=(m, d))
    y = np.array([0, 1, 1, 0, 1])
    psi = label_embedding(y, "classification", c)
    mu = conditional_embedding(F, psi, lam)
    assert mu.shape == (c, d)
    K = np.array([[sum(F[i, k] * F[j, k] for k in range(d)) for j in range(m)] for i in range(m)])
    for x in rng.normal(size=(4, d)):
        k_x = np.array([sum(F[i, k] * x[k] for k in range(d)) for i in range(m)])
        beta = np.linalg.solve(K + lam * np.eye(m), k_x)
        direct = sum(beta[i] * psi[i] for i in range(m))
        np.testing.assert_allclose(mu @ x, direct, rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 12), d=st.integers(1, 6), lam=st.floats(1e-3, 10.0), seed=st.integers(0, 10**6))
def test_feature_space_form_equals_the_gram_form_of_eq8(m, d, lam, seed):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(m, d))
    psi = rng.normal(size=(m, 3))
    np.testing.assert_allclose(conditional_embedding(F, psi, lam), conditional_embedding_gram(F, psi, lam), rtol=1e-7, atol=1e-9)


def test_conditional_embedding_recovers_a_linear_label_map_as_lambda_vanishes():
    rng = np.random.default_rng(1)
    F = rng.normal(size=(200, 4))
    A = rng.normal(size=(2, 4))
    mu = conditional_embedding(F, F @ A.T, 1e-9)
    np.testing.assert_allclose(mu, A, atol=1e-6)
    # lambda shrinks the operator: a larger lambda gives a smaller norm
    assert np.linalg.norm(conditional_embedding(F, F @ A.T, 50.0)) < np.linalg.norm(mu)


def test_meta_feature_concatenates_mu_x_and_mu_y_given_x():
    rng = np.random.default_rng(2)
    F = rng.normal(size=(30, 3))
    y = rng.integers(0, 4, size=30)
    M = meta_feature(F, y, "classification", 4, 0.5)
    assert M.shape == (3 + 4 * 3,)
    np.testing.assert_allclose(M[:3], F.mean(axis=0))
    np.testing.assert_allclose(M[3:].reshape(4, 3), conditional_embedding(F, np.eye(4)[y], 0.5))


def test_regression_labels_are_standardised_scalars():
    psi = label_embedding(np.array([1.0, 3.0, 5.0]), "regression", 1)
    np.testing.assert_allclose(psi[:, 0], [-1.2247449, 0.0, 1.2247449], atol=1e-6)


def test_bad_lambda_and_labels_are_one_line_errors():
    F = np.ones((3, 2))
    with pytest.raises(ConfigurationError, match="lambda of Eq. 8"):
        conditional_embedding(F, np.ones((3, 1)), 0.0)
    with pytest.raises(ConfigurationError, match="labels must lie in 0..1"):
        label_embedding(np.array([0, 2]), "classification", 2)
