"""RGPE: ranking-weighted Gaussian process ensemble (Feurer, Letham, Hutter, Bakshy 2018).

One GP per training task and one on the test task's observations, all on ``[config, epoch]``
with standardised outcomes. The ensemble predicts ``mean = sum_i w_i mu_i`` and
``variance = sum_i w_i^2 sigma_i^2``; ``w_i`` is the fraction of posterior samples in which model
``i`` has the lowest ranking loss (number of misordered pairs) on the test observations. Base
models are sampled jointly at the observed points; the test GP through its leave-one-out
predictive marginals. A base model whose median loss exceeds the 95th percentile of the test
model's loss gets weight 0 (the paper's guard against weight dilution). Max-Trial UCB on top.
"""

from __future__ import annotations

import numpy as np

from transfertune.errors import ConfigurationError
from transfertune.methods.base import TransferProblem
from transfertune.methods.baselines.gp import GPFactor, WarmStartGP, fit_gp
from transfertune.methods.baselines.maxtrial import GridPrediction, MaxTrialBO, normalise_epochs, sample_cells
from transfertune.methods.registry import register


def ranking_loss(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Misordered pairs of every sample against the observations.

    Args:
        samples: ``(S, N)`` predicted values at the N observed points.
        y: ``(N,)`` observed values.
    Returns:
        ``(S,)`` counts of ordered pairs ``(j, k)`` with ``(f_j < f_k) xor (y_j < y_k)``.
    """
    y_less = y[:, None] < y[None, :]
    f_less = samples[:, :, None] < samples[:, None, :]
    return (f_less ^ y_less[None]).sum(axis=(1, 2))


def ranking_weights(losses: np.ndarray, rng: np.random.Generator, dilution_percentile: float | None = 95.0) -> np.ndarray:
    """RGPE weights from sampled ranking losses.

    Args:
        losses: ``(M, S)``: rows 0..M-2 the base models, the last row the test-task model.
        dilution_percentile: drop a base model whose median loss is above this percentile of
            the test model's losses (None: keep all).
    Returns:
        ``(M,)`` weights summing to 1: how often each model has the lowest loss, ties split at
        random.
    """
    losses = np.asarray(losses, dtype=np.float64).copy()
    if dilution_percentile is not None:
        threshold = np.percentile(losses[-1], dilution_percentile)
        dropped = np.median(losses[:-1], axis=1) > threshold
        losses[:-1][dropped] = np.inf
    jitter = rng.random(losses.shape)  # losses are integers: a uniform draw below 1 only breaks ties
    best = np.argmin(losses + jitter, axis=0)
    return np.bincount(best, minlength=losses.shape[0]) / losses.shape[1]


def _sample_joint(mean: np.ndarray, cov: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(S, N)`` draws from N(mean, cov) with a jittered Cholesky factor."""
    n = len(mean)
    jitter = 1e-8 * max(float(np.mean(np.diag(cov))), 1e-12)
    for _ in range(6):
        try:
            L = np.linalg.cholesky(cov + jitter * np.eye(n))
            break
        except np.linalg.LinAlgError:
            jitter *= 10
    else:  # numerically indefinite: fall back to the marginals
        return mean + np.sqrt(np.clip(np.diag(cov), 0, None)) * rng.standard_normal((n_samples, n))
    return mean + rng.standard_normal((n_samples, n)) @ L.T


@register("rgpe")
class RGPE(MaxTrialBO):
    """Ranking-weighted GP ensemble with Max-Trial UCB.

    Args:
        eta: UCB weight of the ensemble standard deviation.
        points_per_task: (config, epoch) cells sampled from each training task for its GP (an
            exact GP on all ``n * E`` cells would be too slow); each config gets an equal share.
        base_maxiter: L-BFGS iterations of each base GP's fit.
        n_samples: posterior samples for the ranking losses.
        dilution_percentile: see :func:`ranking_weights`; None disables the guard.
        refit_every, full_refits, maxiter, max_points: the test-task GP (see ``WarmStartGP``).
    """

    uses_transfer = True

    def __init__(
        self,
        eta: float = 0.25,
        acquisition: str = "ucb",
        recommend_from: str = "all",
        points_per_task: int = 200,
        base_maxiter: int = 100,
        n_samples: int = 256,
        dilution_percentile: float | None = 95.0,
        refit_every: int = 5,
        full_refits: int = 10,
        maxiter: int = 50,
        max_points: int = 200,
    ) -> None:
        super().__init__(acquisition=acquisition, eta=eta, recommend_from=recommend_from)
        if points_per_task < 2 or n_samples < 1 or base_maxiter < 1:
            raise ConfigurationError("points_per_task >= 2, n_samples >= 1 and base_maxiter >= 1 are required")
        if dilution_percentile is not None and not 0 <= dilution_percentile <= 100:
            raise ConfigurationError(f"dilution_percentile must be in [0, 100] or null, got {dilution_percentile}")
        self.points_per_task = int(points_per_task)
        self.base_maxiter = int(base_maxiter)
        self.n_samples = int(n_samples)
        self.dilution_percentile = dilution_percentile
        self._gp_settings = dict(refit_every=refit_every, full_refits=full_refits, maxiter=maxiter, max_points=max_points)
        WarmStartGP(**self._gp_settings)

    # ------------------------------------------------------------------ offline
    def fit_offline(self, problem: TransferProblem) -> None:
        self.gp = WarmStartGP(**self._gp_settings)
        self.base_factors: list[GPFactor] = []
        base_means, base_vars = [], []
        shape = (problem.n_configs, problem.n_epochs)
        for grid in problem.train_grids:
            idx, epochs = sample_cells(grid, self.points_per_task, self.rng)
            X = np.concatenate([problem.X[idx], normalise_epochs(epochs, problem.n_epochs)[:, None]], axis=1)
            factor = GPFactor(fit_gp(X, grid[idx, epochs - 1], maxiter=self.base_maxiter))
            self.base_factors.append(factor)
            mean, var = factor.predict(self.grid, standardized=True)  # fixed: predicted once
            base_means.append(mean.reshape(shape))
            base_vars.append(var.reshape(shape))
        self.base_means = np.stack(base_means)  # (T, n, E)
        self.base_vars = np.stack(base_vars)
        self.weights = np.full(len(self.base_factors), 1.0 / len(self.base_factors))

    # ------------------------------------------------------------------ online
    def compute_weights(self, target: GPFactor, X_obs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``(T + 1,)`` weights of the base models and (last) the test model."""
        losses = []
        for factor in self.base_factors:
            mean, cov = factor.joint(X_obs)
            losses.append(ranking_loss(_sample_joint(mean, cov, self.n_samples, self.rng), y))
        loo_mean, loo_var = target.leave_one_out()
        loo_samples = loo_mean + np.sqrt(loo_var) * self.rng.standard_normal((self.n_samples, len(y)))
        losses.append(ranking_loss(loo_samples, y))  # ranks are scale-free: raw y orders like the standardised one
        return ranking_weights(np.stack(losses), self.rng, self.dilution_percentile)

    def predict_grid(self) -> GridPrediction | None:
        idx, epochs, values = self.observations()
        shape = (self.problem.n_configs, self.problem.n_epochs)
        means, variances = list(self.base_means), list(self.base_vars)
        if len(values) == 0:
            # cold start: no test model yet; the base models share the weight
            weights = np.full(len(means), 1.0 / len(means))
        else:
            keep = self.gp.subsample(idx, epochs, self.rng)
            X_obs = self.inputs(idx[keep], epochs[keep])
            target = self.gp.update(X_obs, values[keep], n_seen=len(values))
            weights = self.compute_weights(target, X_obs, values[keep])
            mean, var = target.predict(self.grid, standardized=True)
            means.append(mean.reshape(shape))
            variances.append(var.reshape(shape))
        self.weights = weights
        mean = np.tensordot(weights, np.stack(means), axes=1)
        variance = np.tensordot(weights**2, np.stack(variances), axes=1)
        return GridPrediction(mean, variance)
