"""ABLR: the evidence against a direct Gaussian density, training, posterior and cold start."""

import numpy as np
import torch
from scipy.stats import multivariate_normal

from transfertune.methods.baselines.ablr import _neg_log_evidence, blr_log_marginal
from transfertune.methods.registry import make_method


def test_blr_evidence_equals_the_gaussian_marginal_density():
    rng = np.random.default_rng(0)
    Phi, y = rng.normal(size=(20, 4)), rng.normal(size=20)
    for log_alpha, log_beta in [(0.0, 0.0), (1.0, 2.0), (-2.0, 3.0)]:
        cov = Phi @ Phi.T / np.exp(log_alpha) + np.eye(20) / np.exp(log_beta)  # y ~ N(0, Phi Phi^T / alpha + I / beta)
        expected = multivariate_normal(np.zeros(20), cov).logpdf(y)
        value = blr_log_marginal(torch.tensor(Phi), torch.tensor(y), torch.tensor(log_alpha, dtype=torch.float64), torch.tensor(log_beta, dtype=torch.float64))
        np.testing.assert_allclose(float(value), expected, rtol=1e-9)
        lam, U = np.linalg.eigh(Phi.T @ Phi)
        eig = -_neg_log_evidence(np.array([log_alpha, log_beta]), lam, U.T @ (Phi.T @ y), float(y @ y), 20)
        np.testing.assert_allclose(eig, expected, rtol=1e-9)


def test_training_raises_the_evidence_and_the_test_posterior_learns(tiny):
    problem, test_grid = tiny(test_like=0)
    method = make_method("ablr", {"steps": 150})
    method.setup(problem)
    surrogate = method.surrogate
    assert surrogate.losses[-1] < surrogate.losses[0] - 0.1
    # cold start with the tasks' prior mean: predictions already rank the test configs
    cold = method.prediction().mean.max(axis=1)
    assert np.corrcoef(cold, test_grid.max(axis=1))[0, 1] > 0.5
    # observing the test task's full curves makes the posterior mean close to them
    for config in range(problem.n_configs):
        for epoch in range(1, problem.n_epochs + 1):
            method.tell(config, epoch, test_grid[config, epoch - 1])
    mean = method.prediction().mean * surrogate.y_std + surrogate.y_mean
    assert np.abs(mean - test_grid).mean() < 0.05
    assert method.recommend() == int(np.argmax(mean.max(axis=1)))


def test_zero_prior_mean_gives_a_flat_cold_start(tiny):
    problem, _ = tiny()
    method = make_method("ablr", {"steps": 20, "prior_mean": "zero"})
    method.setup(problem)
    assert np.allclose(method.prediction().mean, 0.0)


def test_ablr_hb_picks_the_highest_ucb_config_among_new_ones(tiny):
    problem, grid = tiny()
    method = make_method("ablr_hb", {"steps": 60})
    method.setup(problem)
    first = method.ask()
    prediction = method.surrogate.posterior(np.array([], dtype=np.int64), np.array([]))
    ucb = (prediction.mean + 0.25 * np.sqrt(prediction.variance)).max(axis=1)
    assert first == int(np.argmax(ucb))
