"""Meta features of a data set (Meta-HPO, seed 003, section 3.3, Eq. 6-8).

A data set ``D = {(x_i, y_i)}_{i=1..m}`` is described by kernel embeddings of its distribution
computed on the features ``phi_e(x)`` of a trained network (the probe of the adversarial
sampler, :func:`transfertune.data.adversarial.probe_features`):

* the mean embedding (Eq. 6): ``mu_X = 1/m sum_i phi_e(x_i)``, shape ``(d,)``;
* the conditional embedding (Eq. 8): ``mu_{Y|X} = Psi_y (Phi_x Phi_x^T + lambda I)^{-1} Phi_x``,
  with ``Phi_x`` the ``(m, d)`` matrix of rows ``phi_e(x_i)`` and ``Psi_y`` the ``(c, m)`` matrix of
  columns ``psi_y(y_i)`` (one-hot labels for classification, the standardised target for
  regression), shape ``(c, d)``. It is the conditional embedding operator of Song et al. (2009):
  ``mu_{Y|X} phi_e(x)`` is the kernel-ridge estimate of ``E[psi_y(Y) | x]``.

By the push-through identity ``(Phi Phi^T + lambda I_m)^{-1} Phi = Phi (Phi^T Phi + lambda I_d)^{-1}``
we solve the ``d x d`` system instead of the ``m x m`` one (``d`` = 64 probe features, ``m`` up to
the whole data set); :func:`conditional_embedding_gram` is the ``m x m`` form, kept as the
reference the tests compare against.

The meta feature is ``M = [mu_X, vec(mu_{Y|X})]``, shape ``(d + c d,)``.
"""

from __future__ import annotations

import numpy as np

from transfertune.errors import ConfigurationError


def mean_embedding(features: np.ndarray) -> np.ndarray:
    """Eq. 6: ``mu_X = 1/m sum_i phi_e(x_i)``. ``features``: ``(m, d)`` -> ``(d,)``."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) == 0:
        raise ConfigurationError(f"mean embedding needs an (m, d) feature matrix with m >= 1, got shape {features.shape}")
    return features.mean(axis=0)


def label_embedding(y: np.ndarray, task_type: str, n_classes: int) -> np.ndarray:
    """``psi_y`` of every label as rows, ``(m, c)``: one-hot class indicators (``c = n_classes``)
    or, for regression, the target standardised over the set (``c = 1``)."""
    y = np.asarray(y)
    if task_type == "classification":
        labels = y.astype(np.int64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= n_classes:
            raise ConfigurationError(f"labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
        return np.eye(int(n_classes))[labels]
    y = y.astype(np.float64)
    std = y.std()
    return ((y - y.mean()) / (std if std > 0 else 1.0))[:, None]


def conditional_embedding(features: np.ndarray, psi: np.ndarray, lam: float) -> np.ndarray:
    """Eq. 8 in its ``d x d`` form: ``Psi_y Phi_x (Phi_x^T Phi_x + lambda I_d)^{-1}``.

    Args:
        features: ``Phi_x``, ``(m, d)`` rows ``phi_e(x_i)``.
        psi: ``Psi_y^T``, ``(m, c)`` rows ``psi_y(y_i)``.
        lam: the regularisation ``lambda > 0``.

    Returns:
        ``(c, d)``.
    """
    features, psi = _check(features, psi, lam)
    d = features.shape[1]
    gram = features.T @ features + lam * np.eye(d)  # (d, d), symmetric positive definite
    # mu = Psi^T Phi gram^{-1}  <=>  gram mu^T = Phi^T Psi  (gram is symmetric)
    return np.linalg.solve(gram, features.T @ psi).T


def conditional_embedding_gram(features: np.ndarray, psi: np.ndarray, lam: float) -> np.ndarray:
    """Eq. 8 as written, with the ``m x m`` Gram matrix: ``Psi_y (Phi_x Phi_x^T + lambda I_m)^{-1} Phi_x``.
    Same arguments and result as :func:`conditional_embedding`; ``O(m^3)``, for small sets."""
    features, psi = _check(features, psi, lam)
    m = features.shape[0]
    return psi.T @ np.linalg.solve(features @ features.T + lam * np.eye(m), features)


def meta_feature(features: np.ndarray, y: np.ndarray, task_type: str, n_classes: int, lam: float) -> np.ndarray:
    """``M = [mu_X, vec(mu_{Y|X})]`` of one data set, ``(d + c d,)`` (row-major ``vec``)."""
    mu_x = mean_embedding(features)
    mu_yx = conditional_embedding(features, label_embedding(y, task_type, n_classes), lam)
    return np.concatenate([mu_x, mu_yx.reshape(-1)])


def _check(features: np.ndarray, psi: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    if not (isinstance(lam, (int, float)) and np.isfinite(lam) and lam > 0):
        raise ConfigurationError(f"meta_features.lam (the lambda of Eq. 8) must be a positive number, got {lam!r}")
    if features.ndim != 2 or psi.ndim != 2 or len(features) != len(psi) or len(features) == 0:
        raise ConfigurationError(f"conditional embedding needs (m, d) features and (m, c) label embeddings, got {features.shape} and {psi.shape}")
    return features, psi
