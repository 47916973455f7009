"""ABLR (Perrone, Jenatton, Seeger, Archambeau 2018) and ABLR-HB (Valkov et al. 2018).

A torch MLP maps ``[config, epoch]`` to K features shared by all tasks; each task t has its own
Bayesian linear regression ``y = phi(x)^T w_t + noise`` with ``w_t ~ N(0, I / alpha_t)`` and noise
precision ``beta_t``. The network and every ``(alpha_t, beta_t)`` maximise the sum of the
training tasks' log marginal likelihoods (Adam, full batch). On the test task the features are
frozen; its BLR's ``(alpha, beta)`` are refitted on each update by maximising its marginal
likelihood (scipy L-BFGS-B on two scalars), and its posterior drives Max-Trial UCB (``ablr``) or
chooses each new Hyperband config (``ablr_hb``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from transfertune.errors import ConfigurationError
from transfertune.methods.base import TransferProblem
from transfertune.methods.baselines.hyperband import Hyperband
from transfertune.methods.baselines.maxtrial import GridPrediction, MaxTrialBO, grid_inputs, max_trial_scores, normalise_epochs, sample_cells, single_blas_thread
from transfertune.methods.registry import register


def blr_log_marginal(Phi: torch.Tensor, y: torch.Tensor, log_alpha: torch.Tensor, log_beta: torch.Tensor) -> torch.Tensor:
    """Log evidence of Bayesian linear regression (Bishop 2006, eq. 3.86).

    Args:
        Phi: ``(N, K)`` features; y: ``(N,)`` targets; log_alpha, log_beta: scalar log prior
            precision of the weights and log noise precision.
    """
    N, K = Phi.shape
    alpha, beta = log_alpha.exp(), log_beta.exp()
    A = beta * Phi.T @ Phi + alpha * torch.eye(K, dtype=Phi.dtype)
    L = torch.linalg.cholesky(A)
    m = beta * torch.cholesky_solve((Phi.T @ y).unsqueeze(-1), L).squeeze(-1)
    resid = y - Phi @ m
    return (
        0.5 * K * log_alpha
        + 0.5 * N * log_beta
        - 0.5 * beta * resid @ resid
        - 0.5 * alpha * m @ m
        - torch.log(torch.diagonal(L)).sum()
        - 0.5 * N * math.log(2 * math.pi)
    )


def _blr_posterior(Phi: np.ndarray, r: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of ``w`` given residual targets ``r``: mean ``(K,)`` and Cholesky ``(K, K)`` of its precision."""
    K = Phi.shape[1]
    L = np.linalg.cholesky(beta * Phi.T @ Phi + alpha * np.eye(K))
    m = beta * np.linalg.solve(L.T, np.linalg.solve(L, Phi.T @ r))
    return m, L


def _neg_log_evidence(log_params: np.ndarray, lam: np.ndarray, c: np.ndarray, rr: float, n: int) -> float:
    """Negative BLR log evidence in the eigenbasis of ``Phi^T Phi`` (MacKay's trick: O(K) per call).

    Args:
        log_params: ``[log alpha, log beta]``.
        lam: ``(K,)`` eigenvalues of ``Phi^T Phi``; c: ``(K,)`` ``U^T Phi^T r`` in its eigenvectors U;
        rr: ``r^T r``; n: number of observations.
    """
    log_alpha, log_beta = log_params
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    d = beta * lam + alpha  # eigenvalues of the posterior precision A
    c2 = c * c
    m2 = np.sum(beta**2 * c2 / d**2)  # ||m||^2 with m = beta A^-1 Phi^T r
    resid2 = rr - 2 * np.sum(beta * c2 / d) + np.sum(beta**2 * c2 * lam / d**2)  # ||r - Phi m||^2
    value = 0.5 * len(lam) * log_alpha + 0.5 * n * log_beta - 0.5 * beta * resid2 - 0.5 * alpha * m2 - 0.5 * np.sum(np.log(d)) - 0.5 * n * np.log(2 * np.pi)
    return -float(value)


class FeatureNet(torch.nn.Module):
    """``(N, D) -> (N, width)`` tanh MLP (Perrone et al.: 3 layers of 50 units)."""

    def __init__(self, in_dim: int, width: int = 50, depth: int = 3) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for i in range(depth):
            layers += [torch.nn.Linear(in_dim if i == 0 else width, width), torch.nn.Tanh()]
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ABLRSurrogate:
    """The learned feature map and the test task's BLR on the ``(n, E)`` candidate grid.

    Args:
        width, depth: the MLP.
        steps, lr: Adam on the summed negative log evidence of the training tasks.
        points_per_task: recorded (config, epoch) cells sampled per training task.
        prior_mean: ``"tasks"``: the test weights' prior mean is the average posterior mean of
            the training tasks (a cold-start prediction from transfer); ``"zero"``: the paper's.
    """

    def __init__(self, width: int = 50, depth: int = 3, steps: int = 300, lr: float = 0.01, points_per_task: int = 1000, prior_mean: str = "tasks") -> None:
        if width < 1 or depth < 1 or steps < 1 or lr <= 0 or points_per_task < 2:
            raise ConfigurationError("ABLR needs width, depth, steps >= 1, lr > 0 and points_per_task >= 2")
        if prior_mean not in ("tasks", "zero"):
            raise ConfigurationError(f"prior_mean must be 'tasks' or 'zero', got {prior_mean!r}")
        self.width, self.depth, self.steps, self.lr = int(width), int(depth), int(steps), float(lr)
        self.points_per_task = int(points_per_task)
        self.prior_mean = prior_mean

    def fit(self, problem: TransferProblem, rng: np.random.Generator) -> None:
        """Learn the features and the training tasks' BLRs; precompute the grid's features."""
        E = problem.n_epochs
        inputs, targets, self.task_mean, self.task_std = [], [], [], []
        for grid in problem.train_grids:
            idx, epochs = sample_cells(grid, self.points_per_task, rng)
            y = grid[idx, epochs - 1]
            mu, sd = float(y.mean()), float(y.std()) or 1.0
            self.task_mean.append(mu)
            self.task_std.append(sd)
            inputs.append(torch.as_tensor(np.concatenate([problem.X[idx], normalise_epochs(epochs, E)[:, None]], axis=1), dtype=torch.float32))
            targets.append(torch.as_tensor((y - mu) / sd, dtype=torch.float64))
        T = len(inputs)
        with torch.random.fork_rng():  # initialise from the repetition's seed, leave the global RNG alone
            torch.manual_seed(int(rng.integers(2**31 - 1)))
            self.net = FeatureNet(problem.X.shape[1] + 1, self.width, self.depth)
        log_alpha = torch.zeros(T, dtype=torch.float64, requires_grad=True)
        log_beta = torch.full((T,), math.log(10.0), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([*self.net.parameters(), log_alpha, log_beta], lr=self.lr)
        total = sum(len(y) for y in targets)
        self.losses: list[float] = []
        for _ in range(self.steps):
            optimizer.zero_grad()
            loss = -sum(blr_log_marginal(self.net(x).double(), y, log_alpha[t], log_beta[t]) for t, (x, y) in enumerate(zip(inputs, targets))) / total
            loss.backward()
            optimizer.step()
            self.losses.append(float(loss.detach()))
        with torch.no_grad():
            self.alphas = log_alpha.exp().numpy().copy()
            self.betas = log_beta.exp().numpy().copy()
            weights = []
            for t, (x, y) in enumerate(zip(inputs, targets)):
                Phi = self.net(x).double().numpy()
                weights.append(_blr_posterior(Phi, y.numpy(), self.alphas[t], self.betas[t])[0])
            self.task_weights = np.stack(weights)  # (T, K)
            self.grid_features = self.features(grid_inputs(problem.X, E))
        self.shape = (problem.n_configs, E)
        self.prior_w = self.task_weights.mean(axis=0) if self.prior_mean == "tasks" else np.zeros(self.width)
        # the test task is standardised with the training tasks' average scale (known before any query)
        self.y_mean, self.y_std = float(np.mean(self.task_mean)), float(np.mean(self.task_std))
        self.log_alpha0, self.log_beta0 = float(np.log(self.alphas).mean()), float(np.log(self.betas).mean())
        self.test_log_params = np.array([self.log_alpha0, self.log_beta0])

    def features(self, X: np.ndarray) -> np.ndarray:
        """``(N, D) -> (N, K)`` float64 features."""
        with torch.no_grad():
            return self.net(torch.as_tensor(X, dtype=torch.float32)).double().numpy()

    def posterior(self, cells: np.ndarray, values: np.ndarray) -> GridPrediction:
        """Test-task BLR given observations at flat grid ``cells (N,)``; standardised scale.

        With fewer than 2 observations the prior hyperparameters (geometric means of the
        training tasks') are used; otherwise ``(alpha, beta)`` maximise the test evidence,
        warm-started from the last fit.
        """
        Phi = self.grid_features[cells]
        r = (np.asarray(values) - self.y_mean) / self.y_std - Phi @ self.prior_w
        if len(values) >= 2:
            lam, U = np.linalg.eigh(Phi.T @ Phi)
            lam = np.clip(lam, 0.0, None)
            c = U.T @ (Phi.T @ r)
            result = minimize(_neg_log_evidence, self.test_log_params, args=(lam, c, float(r @ r), len(r)), method="L-BFGS-B", bounds=[(-9.0, 9.0), (-9.0, 12.0)])
            if np.isfinite(result.fun):
                self.test_log_params = result.x
            log_alpha, log_beta = self.test_log_params
        else:
            log_alpha, log_beta = self.log_alpha0, self.log_beta0
        m, L = _blr_posterior(Phi, r, float(np.exp(log_alpha)), float(np.exp(log_beta)))
        mean = self.grid_features @ (self.prior_w + m)
        V = np.linalg.solve(L, self.grid_features.T)  # var_i = phi_i^T A^-1 phi_i
        variance = (V * V).sum(axis=0)
        return GridPrediction(mean.reshape(self.shape), variance.reshape(self.shape))



@register("ablr")
class ABLR(MaxTrialBO):
    """ABLR with ``[config, epoch]`` inputs and Max-Trial UCB on the test task's BLR posterior.

    ``eta``, ``acquisition``, ``recommend_from``: see :class:`MaxTrialBO`; the others:
    :class:`ABLRSurrogate`.
    """

    uses_transfer = True

    def __init__(
        self,
        eta: float = 0.25,
        acquisition: str = "ucb",
        recommend_from: str = "all",
        width: int = 50,
        depth: int = 3,
        steps: int = 300,
        lr: float = 0.01,
        points_per_task: int = 1000,
        prior_mean: str = "tasks",
    ) -> None:
        super().__init__(acquisition=acquisition, eta=eta, recommend_from=recommend_from)
        self.surrogate_settings = dict(width=width, depth=depth, steps=steps, lr=lr, points_per_task=points_per_task, prior_mean=prior_mean)
        ABLRSurrogate(**self.surrogate_settings)  # validate now

    def fit_offline(self, problem: TransferProblem) -> None:
        self.surrogate = ABLRSurrogate(**self.surrogate_settings)
        self.surrogate.fit(problem, self.rng)

    def predict_grid(self) -> GridPrediction:
        idx, epochs, values = self.observations()
        return self.surrogate.posterior(idx * self.problem.n_epochs + epochs - 1, values)


@register("ablr_hb")
class ABLRHB(Hyperband):
    """ABLR-HB: Hyperband whose new configs maximise ABLR's Max-Trial UCB (Valkov et al. 2018).

    The test BLR is conditioned on every observation so far, at all epochs; among the configs
    Hyperband may start, the one with the highest ``max_e mean + ucb_eta * std`` is chosen.
    ``eta``: Hyperband's halving rate; the others: :class:`ABLRSurrogate`.
    """

    uses_transfer = True

    def __init__(
        self,
        eta: int = 3,
        min_epochs: int = 1,
        ucb_eta: float = 0.25,
        width: int = 50,
        depth: int = 3,
        steps: int = 300,
        lr: float = 0.01,
        points_per_task: int = 1000,
        prior_mean: str = "tasks",
    ) -> None:
        super().__init__(eta=eta, min_epochs=min_epochs)
        if ucb_eta < 0:
            raise ConfigurationError(f"ucb_eta must be non-negative, got {ucb_eta}")
        self.ucb_eta = float(ucb_eta)
        self.surrogate_settings = dict(width=width, depth=depth, steps=steps, lr=lr, points_per_task=points_per_task, prior_mean=prior_mean)
        ABLRSurrogate(**self.surrogate_settings)

    def fit_offline(self, problem: TransferProblem) -> None:
        self.surrogate = ABLRSurrogate(**self.surrogate_settings)
        with single_blas_thread():
            self.surrogate.fit(problem, self.rng)

    def propose(self, pool: np.ndarray) -> int:
        idx, epochs, values = [], [], []
        for i, curve in enumerate(self.curves):
            idx += [i] * len(curve)
            epochs += list(range(1, len(curve) + 1))
            values += curve
        cells = np.asarray(idx, dtype=np.int64) * self.problem.n_epochs + np.asarray(epochs, dtype=np.int64) - 1
        with single_blas_thread():
            prediction = self.surrogate.posterior(cells, np.asarray(values, dtype=np.float64))
        scores = max_trial_scores(prediction, "ucb", self.ucb_eta)
        return int(pool[np.argmax(scores[pool])])
