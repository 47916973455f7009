"""Single-task GP baselines on ``[config, epoch]``: GP-UCB, GP-EI and Box-BO.

The surrogate is BoTorch's ``SingleTaskGP`` (its default ARD RBF kernel with dimension-scaled
lengthscale prior, Gaussian likelihood, standardised outcomes) fitted with ``fit_gpytorch_mll``.
Refitting its hyperparameters after each query dominates the cost, so :class:`WarmStartGP`
refits them on every query while data are few, then every ``refit_every`` queries from the last
values (warm start); in between the GP is conditioned on the new data with fixed
hyperparameters. Predictions on the full grid use :class:`GPFactor` (one Cholesky factor,
marginal variances only), not the joint posterior, which would be ``(n E) x (n E)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.cholesky import psd_safe_cholesky

from transfertune.core.metrics import config_ranks
from transfertune.errors import ConfigurationError
from transfertune.methods.base import TransferProblem
from transfertune.methods.baselines.maxtrial import GridPrediction, MaxTrialBO
from transfertune.methods.registry import register

Hyperparameters = dict[str, torch.Tensor]


def fit_gp(X: np.ndarray, y: np.ndarray, hyperparameters: Hyperparameters | None = None, optimize: bool = True, maxiter: int = 50) -> SingleTaskGP:
    """A ``SingleTaskGP`` on ``X (N, D)``, ``y (N,)``, in eval mode.

    Args:
        hyperparameters: start values (from :func:`hyperparameters_of`); None: BoTorch defaults.
        optimize: fit them by maximising the marginal likelihood (L-BFGS, ``maxiter`` steps);
            if BoTorch's fit fails, the start values are kept.
    """
    model = SingleTaskGP(torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64).reshape(-1, 1), outcome_transform=Standardize(m=1))
    if hyperparameters is not None:
        model.load_state_dict(hyperparameters, strict=False)
    if optimize and len(y) >= 2:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BoTorch's optimisation warnings: the fit retries or we keep the start
            try:
                fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": int(maxiter)}})
            except ModelFittingError:
                if hyperparameters is not None:
                    model.load_state_dict(hyperparameters, strict=False)
    model.eval()
    return model


def hyperparameters_of(model: SingleTaskGP) -> Hyperparameters:
    """Kernel, mean and noise parameters (not the data-dependent outcome transform)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("outcome_transform")}


class GPFactor:
    """Exact GP predictions from one Cholesky factor of a fitted ``SingleTaskGP``.

    All quantities are on the model's standardised outcome scale unless ``standardized=False``.
    """

    def __init__(self, model: SingleTaskGP) -> None:
        self.model = model
        with torch.no_grad():
            self.train_X = model.train_inputs[0]
            y = model.train_targets
            n = y.shape[-1]
            noise = model.likelihood.noise.reshape(-1).expand(n)
            K = model.covar_module(self.train_X).to_dense() + torch.diag(noise)
            self.L = psd_safe_cholesky(K)
            self.residual = y - model.mean_module(self.train_X)
            self.alpha = torch.cholesky_solve(self.residual.unsqueeze(-1), self.L).squeeze(-1)
        self.y_mean = float(model.outcome_transform.means.reshape(-1)[0])
        self.y_std = float(model.outcome_transform.stdvs.reshape(-1)[0])

    def _cross(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        Ks = self.model.covar_module(X, self.train_X).to_dense()
        mean = self.model.mean_module(X) + Ks @ self.alpha
        V = torch.linalg.solve_triangular(self.L, Ks.T, upper=False)
        return mean, V

    def predict(self, X: np.ndarray, standardized: bool = False, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Marginal mean and variance of the latent function at ``X (M, D)``: two ``(M,)`` arrays."""
        X = torch.as_tensor(X, dtype=torch.float64)
        means, variances = [], []
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):  # bounded memory for large grids
                part = X[start : start + chunk]
                mean, V = self._cross(part)
                prior_var = self.model.covar_module(part, diag=True)
                means.append(mean)
                variances.append((prior_var - (V * V).sum(dim=0)).clamp_min(1e-12))
        mean, variance = torch.cat(means).numpy(), torch.cat(variances).numpy()
        if standardized:
            return mean, variance
        return mean * self.y_std + self.y_mean, variance * self.y_std**2

    def joint(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised joint posterior at ``X (M, D)``: mean ``(M,)`` and covariance ``(M, M)``."""
        X = torch.as_tensor(X, dtype=torch.float64)
        with torch.no_grad():
            mean, V = self._cross(X)
            cov = self.model.covar_module(X).to_dense() - V.T @ V
        return mean.numpy(), cov.numpy()

    def leave_one_out(self) -> tuple[np.ndarray, np.ndarray]:
        """Standardised leave-one-out predictive mean and variance of y (noise included) at the training points.

        With ``K = k(X, X) + noise``: ``mu_i = y_i - [K^-1 r]_i / [K^-1]_ii`` and
        ``var_i = 1 / [K^-1]_ii`` (Rasmussen & Williams, eq. 5.12), ``r`` the residual to the prior mean.
        """
        with torch.no_grad():
            K_inv = torch.cholesky_inverse(self.L)
            diag = torch.diagonal(K_inv)
            targets = self.model.train_targets
            mean = targets - self.alpha / diag
        return mean.numpy(), (1.0 / diag).numpy()


class WarmStartGP:
    """The test-task GP, refitted cheaply as observations arrive.

    Args:
        refit_every: after ``full_refits`` fits, re-optimise hyperparameters only when this many
            points arrived since the last optimisation; otherwise condition with the last ones.
        full_refits: optimise on each of the first updates with at least 2 points.
        maxiter: L-BFGS iterations per optimisation (warm-started from the last values).
        max_points: cap on the GP's data; beyond it, each config's latest epoch is kept plus a
            random subset of the rest (exact GP cost grows as N^3).
    """

    def __init__(self, refit_every: int = 5, full_refits: int = 10, maxiter: int = 50, max_points: int = 200) -> None:
        if refit_every < 1 or maxiter < 1 or max_points < 2 or full_refits < 0:
            raise ConfigurationError("refit_every, maxiter >= 1, max_points >= 2 and full_refits >= 0 are required")
        self.refit_every = int(refit_every)
        self.full_refits = int(full_refits)
        self.maxiter = int(maxiter)
        self.max_points = int(max_points)
        self.hyperparameters: Hyperparameters | None = None
        self.n_fits = 0
        self.n_at_fit = 0

    def subsample(self, idx: np.ndarray, epochs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Positions ``(<= max_points,)`` of the observations the GP keeps."""
        n = len(idx)
        if n <= self.max_points:
            return np.arange(n)
        latest = np.zeros(n, dtype=bool)
        for config in np.unique(idx):
            rows = np.flatnonzero(idx == config)
            latest[rows[np.argmax(epochs[rows])]] = True
        keep = np.flatnonzero(latest)[: self.max_points]
        rest = np.flatnonzero(~latest)
        extra = rng.choice(rest, size=min(len(rest), self.max_points - len(keep)), replace=False)
        return np.sort(np.concatenate([keep, extra]))

    def update(self, X: np.ndarray, y: np.ndarray, n_seen: int | None = None) -> GPFactor:
        """Fit to ``X (N, D)``, ``y (N,)`` (already capped) and return its predictor.

        ``n_seen``: observations seen in total (the refit schedule counts them, not the capped N).
        """
        n = len(y) if n_seen is None else int(n_seen)
        optimize = len(y) >= 2 and (self.n_fits < self.full_refits or n - self.n_at_fit >= self.refit_every or self.hyperparameters is None)
        model = fit_gp(X, y, self.hyperparameters, optimize=optimize, maxiter=self.maxiter)
        if optimize:
            self.hyperparameters = hyperparameters_of(model)
            self.n_fits += 1
            self.n_at_fit = n
        return GPFactor(model)


class _TestTaskGPMethod(MaxTrialBO):
    """Max-Trial BO with a GP on the test task's observations only."""

    def __init__(self, acquisition: str = "ucb", eta: float = 0.25, recommend_from: str = "all", refit_every: int = 5, full_refits: int = 10, maxiter: int = 50, max_points: int = 200) -> None:
        super().__init__(acquisition=acquisition, eta=eta, recommend_from=recommend_from)
        self._gp_settings = dict(refit_every=refit_every, full_refits=full_refits, maxiter=maxiter, max_points=max_points)
        WarmStartGP(**self._gp_settings)  # validate now, so the benchmark fails before running

    def fit_offline(self, problem: TransferProblem) -> None:
        self.gp = WarmStartGP(**self._gp_settings)

    def test_factor(self) -> GPFactor | None:
        """The test-task GP on the current observations; None before any."""
        idx, epochs, values = self.observations()
        if len(values) == 0:
            return None
        keep = self.gp.subsample(idx, epochs, self.rng)
        return self.gp.update(self.inputs(idx[keep], epochs[keep]), values[keep], n_seen=len(values))

    def predict_grid(self) -> GridPrediction | None:
        factor = self.test_factor()
        if factor is None:
            return None
        mean, variance = factor.predict(self.grid)
        shape = (self.problem.n_configs, self.problem.n_epochs)
        return GridPrediction(mean.reshape(shape), variance.reshape(shape))


@register("gp_ucb")
class GPUCB(_TestTaskGPMethod):
    """Single-task GP-UCB (Srinivas et al. 2010) on ``[config, epoch]`` with Max-Trial (no transfer).

    Before any observation: a random config. ``eta`` weights the standard deviation.
    """

    uses_transfer = False

    def __init__(self, eta: float = 0.25, recommend_from: str = "all", refit_every: int = 5, full_refits: int = 10, maxiter: int = 50, max_points: int = 200) -> None:
        super().__init__("ucb", eta, recommend_from, refit_every, full_refits, maxiter, max_points)


@register("gp_ei")
class GPEI(_TestTaskGPMethod):
    """Single-task GP-EI (Jones et al. 1998; BoTorch's log EI) on ``[config, epoch]`` with Max-Trial.

    The incumbent is the best posterior mean at an observed (config, epoch).
    """

    uses_transfer = False

    def __init__(self, recommend_from: str = "all", refit_every: int = 5, full_refits: int = 10, maxiter: int = 50, max_points: int = 200) -> None:
        super().__init__("ei", 0.0, recommend_from, refit_every, full_refits, maxiter, max_points)


def top_config_box(train_grids: np.ndarray, X: np.ndarray, top_k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Perrone et al. (2019)'s box: the bounding box of each training task's ``top_k`` configs.

    Args:
        train_grids: ``(T, n, E)`` training curves.
        X: ``(n, d)`` unit-cube encodings.
    Returns:
        ``lower (d,)``, ``upper (d,)`` and the indices of the top configs (``(<= T * top_k,)``,
        sorted, unique). A config's quality is its best value over epochs.
    """
    if top_k < 1:
        raise ConfigurationError(f"top_k must be >= 1, got {top_k}")
    top = set()
    for grid in train_grids:
        ranks = config_ranks(grid)
        order = np.lexsort((np.arange(len(ranks)), ranks))  # ties: lower index first, deterministic
        top.update(int(i) for i in order[:top_k])
    top_idx = np.array(sorted(top), dtype=np.int64)
    return X[top_idx].min(axis=0), X[top_idx].max(axis=0), top_idx


@register("box_bo")
class BoxBO(GPUCB):
    """Box-BO (Perrone et al. 2019, "Learning search spaces for Bayesian optimization").

    The candidates are the configs inside the bounding box, in the unit-cube encoding, of the top
    ``top_k`` configs of every training task (AT2 section 4: three each); then single-task
    GP-UCB with Max-Trial on the test task. If every config in the box is trained to its end,
    the search continues on all configs.
    """

    uses_transfer = True

    def __init__(self, top_k: int = 3, eta: float = 0.25, recommend_from: str = "all", refit_every: int = 5, full_refits: int = 10, maxiter: int = 50, max_points: int = 200) -> None:
        super().__init__(eta, recommend_from, refit_every, full_refits, maxiter, max_points)
        if top_k < 1:
            raise ConfigurationError(f"top_k must be >= 1, got {top_k}")
        self.top_k = int(top_k)

    def fit_offline(self, problem: TransferProblem) -> None:
        super().fit_offline(problem)
        self.box_lower, self.box_upper, self.top_configs = top_config_box(problem.train_grids, problem.X, self.top_k)
        tol = 1e-9
        self.allowed = np.all((problem.X >= self.box_lower - tol) & (problem.X <= self.box_upper + tol), axis=1)
