"""Max-Trial acquisition (AT2 paper, section 3.4) over the tabular candidate grid, for any surrogate.

Every model-based baseline predicts a Gaussian ``(mean, variance)`` for each (config, epoch) of
the test task: a grid of shape ``(n_configs, E)``. The next config is
``argmax_c max_e phi(c, e)`` over configs that still have an epoch to train, and the query is
that config's next epoch. ``phi`` is BoTorch's analytic ``UpperConfidenceBound`` (with
``beta = eta**2``, so ``phi = mean + eta * std`` as in AT2) or ``LogExpectedImprovement``,
evaluated through :class:`GridGaussianModel`, a BoTorch ``Model`` whose inputs are grid indices.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from botorch.acquisition.analytic import LogExpectedImprovement, UpperConfidenceBound
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator
from threadpoolctl import threadpool_limits

from transfertune.errors import ConfigurationError
from transfertune.methods.base import Method, TransferProblem

ACQUISITIONS = ("ucb", "ei")


def single_blas_thread() -> threadpool_limits:
    """Context: NumPy/SciPy BLAS on one thread. The runner pins torch to one thread per episode;
    a multi-threaded BLAS on small matrices would otherwise spin against the other episodes."""
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class GridPrediction:
    """A surrogate's marginal predictions on the whole candidate grid.

    Attributes:
        mean: ``(n_configs, E)`` predictive mean of the latent objective.
        variance: ``(n_configs, E)`` predictive variance (no observation noise).
    """

    mean: np.ndarray
    variance: np.ndarray


class GridGaussianModel(Model):
    """A BoTorch model over a finite grid: input ``[[i]]`` is the i-th cell of a flat grid.

    It lets BoTorch's analytic acquisition functions score precomputed Gaussian marginals of any
    surrogate (GP, GP ensemble, Bayesian linear regression) without recomputing them.
    """

    def __init__(self, mean: np.ndarray, variance: np.ndarray) -> None:
        super().__init__()
        self._mean = torch.as_tensor(np.asarray(mean, dtype=np.float64).ravel())
        self._variance = torch.as_tensor(np.maximum(np.asarray(variance, dtype=np.float64).ravel(), 1e-12))

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def posterior(self, X: torch.Tensor, output_indices: Any = None, observation_noise: Any = False, posterior_transform: Any = None, **kwargs: Any) -> GPyTorchPosterior:
        """``X``: ``(..., q, 1)`` flat grid indices -> independent Gaussians of shape ``(..., q)``."""
        index = X[..., 0].long()
        mvn = MultivariateNormal(self._mean[index], DiagLinearOperator(self._variance[index]))
        posterior = GPyTorchPosterior(mvn)
        return posterior_transform(posterior) if posterior_transform is not None else posterior


def max_trial_scores(prediction: GridPrediction, acquisition: str, eta: float, best_f: float | None = None) -> np.ndarray:
    """``(n_configs,)``: the max over epochs of the acquisition of every config.

    Args:
        prediction: marginals on the ``(n_configs, E)`` grid.
        acquisition: ``"ucb"`` (``mean + eta * std``) or ``"ei"`` (log expected improvement
            over ``best_f``; the max over epochs is the same for EI and log EI).
        eta: the UCB exploration weight (AT2 uses 0.25).
        best_f: incumbent for EI, on the scale of ``prediction.mean``.
    """
    n_configs, n_epochs = prediction.mean.shape
    model = GridGaussianModel(prediction.mean, prediction.variance)
    if acquisition == "ucb":
        acqf = UpperConfidenceBound(model, beta=float(eta) ** 2)
    elif acquisition == "ei":
        if best_f is None:
            raise ValueError("expected improvement needs best_f")
        acqf = LogExpectedImprovement(model, best_f=float(best_f))
    else:
        raise ConfigurationError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
    cells = torch.arange(n_configs * n_epochs, dtype=torch.float64).view(-1, 1, 1)
    with torch.no_grad():
        values = acqf(cells).view(n_configs, n_epochs)
    return values.max(dim=1).values.numpy()


def grid_inputs(X: np.ndarray, n_epochs: int) -> np.ndarray:
    """``(n * E, d + 1)`` rows ``[config encoding, normalised epoch]``, config-major."""
    n = X.shape[0]
    return np.concatenate([np.repeat(X, n_epochs, axis=0), np.tile(normalise_epochs(np.arange(1, n_epochs + 1), n_epochs), n)[:, None]], axis=1)


def sample_cells(grid: np.ndarray, n_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_points`` recorded cells of a ``(n, E)`` training grid, spread evenly over configs.

    Returns config indices ``(m,)`` and 1-based epochs ``(m,)``, ``m <= n_points``: every config
    gets ``ceil(n_points / n)`` random recorded epochs, in a random config order, then the list
    is cut to ``n_points``.
    """
    n = grid.shape[0]
    per_config = max(1, int(np.ceil(n_points / n)))
    idx: list[int] = []
    epochs: list[int] = []
    for c in rng.permutation(n):
        recorded = np.flatnonzero(np.isfinite(grid[c])) + 1
        if len(recorded):
            chosen = rng.choice(recorded, size=min(per_config, len(recorded)), replace=False)
            idx.extend([int(c)] * len(chosen))
            epochs.extend(int(e) for e in chosen)
    return np.asarray(idx, dtype=np.int64)[:n_points], np.asarray(epochs, dtype=np.int64)[:n_points]


def normalise_epochs(epochs: np.ndarray, n_epochs: int) -> np.ndarray:
    """Epochs ``1..E`` -> ``[0, 1]`` (the fidelity input of every surrogate)."""
    epochs = np.asarray(epochs, dtype=np.float64)
    return (epochs - 1.0) / max(n_epochs - 1, 1)


class MaxTrialBO(Method):
    """Base of the model-based baselines: a surrogate on ``[config, epoch]`` + Max-Trial.

    Subclasses implement :meth:`predict_grid` (the surrogate for the current test observations)
    and may implement :meth:`fit_offline` (training-task models) and set :attr:`allowed` (a
    restricted candidate set, as Box-BO does). Predictions are cached per number of
    observations, so ``recommend`` after a ``tell`` and the next ``ask`` share one model fit.

    Args:
        acquisition: ``"ucb"`` or ``"ei"``.
        eta: UCB weight of the standard deviation (AT2: 0.25 for every method).
        recommend_from: ``"all"``: the config with the highest predicted mean over all cells (the
            AT2 paper's F_Q); ``"best_value"``: the config with the best value observed so far
            (the same two rules and names as AT2's ``recommend_from``).
    """

    uses_transfer = False

    def __init__(self, acquisition: str = "ucb", eta: float = 0.25, recommend_from: str = "all") -> None:
        if acquisition not in ACQUISITIONS:
            raise ConfigurationError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        if recommend_from not in ("all", "best_value"):
            raise ConfigurationError(f"recommend_from must be 'all' or 'best_value', got {recommend_from!r}")
        if eta < 0:
            raise ConfigurationError(f"eta must be non-negative, got {eta}")
        self.acquisition = acquisition
        self.eta = float(eta)
        self.recommend_from = recommend_from

    def fit(self, problem: TransferProblem) -> None:
        self.grid = grid_inputs(problem.X, problem.n_epochs)
        self.allowed = np.ones(problem.n_configs, dtype=bool)
        self._cached: tuple[int, GridPrediction | None] | None = None
        with single_blas_thread():
            self.fit_offline(problem)

    def fit_offline(self, problem: TransferProblem) -> None:
        """Training-task part; default: nothing (single-task methods)."""

    @abstractmethod
    def predict_grid(self) -> GridPrediction | None:
        """Marginals on the grid given the test observations so far; None: no model yet."""

    # ------------------------------------------------------------------ observations
    def observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Test-task data: config indices ``(N,)``, epochs ``(N,)`` (1-based), values ``(N,)``."""
        idx, epochs, values = [], [], []
        for i, curve in enumerate(self.curves):
            idx.extend([i] * len(curve))
            epochs.extend(range(1, len(curve) + 1))
            values.extend(curve)
        return np.asarray(idx, dtype=np.int64), np.asarray(epochs, dtype=np.int64), np.asarray(values, dtype=np.float64)

    def inputs(self, idx: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """``(N, d + 1)`` surrogate inputs of (config, epoch) pairs."""
        return self.grid[np.asarray(idx) * self.problem.n_epochs + np.asarray(epochs) - 1]

    def n_observations(self) -> int:
        return int(self.epoch_counts().sum())

    def prediction(self) -> GridPrediction | None:
        n = self.n_observations()
        if self._cached is None or self._cached[0] != n:
            with single_blas_thread():
                self._cached = (n, self.predict_grid())
        return self._cached[1]

    # ------------------------------------------------------------------ protocol
    def candidate_mask(self) -> np.ndarray:
        """``(n,)`` configs the acquisition may pick: allowed and continuable (else any continuable)."""
        mask = self.continuable() & self.allowed
        return mask if mask.any() else self.continuable()

    def ask(self) -> int:
        mask = self.candidate_mask()
        if not mask.any():
            raise RuntimeError("every config has been trained to its end")
        prediction = self.prediction()
        if prediction is None:  # cold start without a model: a random candidate
            return int(self.rng.choice(np.flatnonzero(mask)))
        best_f = None
        if self.acquisition == "ei":
            # incumbent: the best predicted mean at an observed cell (robust to noisy values)
            idx, epochs, _ = self.observations()
            best_f = float(prediction.mean[idx, epochs - 1].max()) if len(idx) else float(prediction.mean.max())
        scores = max_trial_scores(prediction, self.acquisition, self.eta, best_f)
        scores = np.where(mask, scores, -np.inf)
        return int(np.argmax(scores))

    def recommend(self) -> int:
        prediction = self.prediction() if self.recommend_from == "all" else None
        if prediction is None:
            return super().recommend()
        score = np.where(self.allowed, prediction.mean.max(axis=1), -np.inf)
        return int(np.argmax(score))
