"""Algorithm 2 of seed 000: Bayesian optimisation warm-started from the k nearest datasets.

::

    searcher = SiameseBO(neighbours=["digits-cls-s0-004-...", ...], prior_mean=True, acquisition="ei")
    searcher.setup(problem)            # problem.history holds the training datasets' mappings
    trial = searcher.ask()             # the k neighbours' best configs first, then argmax a(theta | GP)

1-2. ``neighbours``: the k nearest training datasets (retrieved beforehand by learned or
     hand-crafted meta-features, see :mod:`transfertune.methods.siamese.experiment`); their
     mappings ``H_h`` are rows of ``problem.history.train_grids`` at the trial's epoch.
3-6. the first k trials are ``theta_h = argmax_c H_h(c)``, each neighbour's best recorded config
     (when two neighbours share their best, the later one takes its best config not asked yet).
7-11. then each trial maximises EI (BoTorch's log-EI, same argmax) or GP-UCB
     (``mu + sqrt(beta) sigma``) of a GP on the observed ``(theta, J(theta))`` whose prior mean is
     ``(1/k) sum_h H_h`` interpolated to any config (:class:`MappingPriorMean`).
12. ``recommend``: the best config observed.

The baselines of the paper's Figure 2 are the same searcher with other settings: random
initial configs (``neighbours`` omitted, ``n_init`` draws from the space), and the neighbours'
configs without the prior mean (``prior_mean: false``).

Where the tuned task has no raw data to compute meta-features from (catalog replay: HyperRec),
``neighbours: landmarks`` stands in with *landmark* meta-features (Pfahringer et al. 2000, cited
by the paper): the task's own accuracies at ``landmarks`` probe configs, the configs of best mean
rank over the training tasks. After the probes, the k training tasks whose mappings are closest
to them (mean absolute difference at the probes) are the neighbours, and Algorithm 2 goes on
from line 3 with them.

The objective is the protocol's metric (higher is better: validation accuracy); the paper
minimises validation error, which is the same search.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gpytorch.means import Mean

from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError
from transfertune.methods.protocol import SearchProblem, SpaceSearcher
from transfertune.methods.registry import register

ACQUISITIONS = ("ei", "ucb")


def default_lengthscale(X: np.ndarray) -> float:
    """The median distance from each config to its nearest other config ``X (n, d)`` (the grid
    spacing for a grid): the interpolant then bridges neighbouring configs and no further."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        return 0.25
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    nn = d.min(axis=1)
    nn = nn[np.isfinite(nn) & (nn > 0)]
    return float(np.median(nn)) if len(nn) else 0.25


class RBFInterpolant:
    """Gaussian radial-basis interpolation of values ``v (n,)`` at configs ``X (n, d)``::

        f(x) = c + sum_i w_i exp(-||x - x_i||^2 / (2 l^2)),   c = mean(v),
        w = (K + ridge I)^-1 (v - c),   K_ij = exp(-||x_i - x_j||^2 / (2 l^2))

    so ``f(x_i) = v_i`` up to the ridge, and ``f`` returns to ``c`` (the mapping's mean) farther
    than a few ``l`` from every recorded config. Written in torch so acquisition optimisers get
    gradients; scipy's ``RBFInterpolator`` has none.
    """

    def __init__(self, X: np.ndarray, values: np.ndarray, lengthscale: float | None = None, ridge: float = 1e-6) -> None:
        X = np.asarray(X, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        keep = np.isfinite(values)
        if keep.sum() < 1:
            raise ConfigurationError("the prior mean needs at least one recorded value")
        self.X = torch.as_tensor(X[keep])
        self.lengthscale = float(lengthscale if lengthscale is not None else default_lengthscale(X[keep]))
        self.offset = float(values[keep].mean())
        K = self.kernel(self.X, self.X) + ridge * torch.eye(len(self.X), dtype=torch.float64)
        self.weights = torch.linalg.solve(K, torch.as_tensor(values[keep]) - self.offset)

    def kernel(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``exp(-||a - b||^2 / (2 l^2))``, ``(..., N, d), (n, d) -> (..., N, n)``."""
        d2 = ((A.unsqueeze(-2) - B) ** 2).sum(-1)
        return torch.exp(-d2 / (2.0 * self.lengthscale**2))

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``(..., N, d) -> (..., N)``."""
        K = self.kernel(X, self.X.to(X))
        return self.offset + K @ self.weights.to(X)


class MappingPriorMean(Mean):
    """GP prior mean from the k neighbours' mappings, on the model's standardised outcome scale.

    ``m(x) = (H(x) - mu_y) / sigma_y`` with ``H = (1/k) sum_h H_h`` interpolated by
    :class:`RBFInterpolant`, and ``mu_y``, ``sigma_y`` the statistics BoTorch's ``Standardize``
    outcome transform took from the observations (:meth:`match_outcome_scale`). The GP sees
    standardised outcomes, so its prior mean must be standardised alike; the posterior, mapped
    back by the transform, then has ``H(x)`` itself as its prior mean.

    Shapes: ``(..., N, d) -> (..., N)``.
    """

    def __init__(self, interpolant: RBFInterpolant) -> None:
        super().__init__()
        self.interpolant = interpolant
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    def match_outcome_scale(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.shift = torch.as_tensor(mean, dtype=torch.float64).reshape(())
        self.scale = torch.as_tensor(std, dtype=torch.float64).reshape(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.interpolant(x) - self.shift.to(x)) / self.scale.to(x)


def fit_gp(X: np.ndarray, y: np.ndarray, prior: RBFInterpolant | None = None, maxiter: int = 50) -> Any:
    """A BoTorch ``SingleTaskGP`` on ``X (N, d)``, ``y (N,)`` with standardised outcomes, a
    scaled Matern-5/2 ARD kernel (GPyOpt's kernel family, which the paper used) with BoTorch's
    dimension-scaled lengthscale prior, and the prior mean ``prior`` (None: a constant, learned).
    Hyperparameters by maximum marginal likelihood (L-BFGS, ``maxiter`` steps); eval mode."""
    import math

    from botorch.exceptions.errors import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.kernels import MaternKernel, ScaleKernel
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from gpytorch.priors import LogNormalPrior

    X_t = torch.as_tensor(X, dtype=torch.float64)
    Y_t = torch.as_tensor(y, dtype=torch.float64).reshape(-1, 1)
    d = X_t.shape[-1]
    kernel = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_prior=LogNormalPrior(math.sqrt(2) + math.log(d) / 2, math.sqrt(3))))
    mean = MappingPriorMean(prior) if prior is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # input-scaling and fitting warnings on a handful of points
        model = SingleTaskGP(X_t, Y_t, covar_module=kernel, mean_module=mean, outcome_transform=Standardize(m=1))
        if mean is not None:
            mean.match_outcome_scale(model.outcome_transform.means, model.outcome_transform.stdvs)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": int(maxiter)}})
        except ModelFittingError:
            pass  # keep the initial hyperparameters: the acquisition still has a posterior
    model.eval()
    return model


@register("siamese_bo")
class SiameseBO(SpaceSearcher):
    """Algorithm 2 (see the module docstring) through the trial protocol.

    Args:
        neighbours: names of the k nearest training datasets (tasks of ``problem.history``);
            their best configs are the initial trials. ``"landmarks"``: retrieve the ``k``
            nearest from the task's values at ``landmarks`` probe configs. None: ``n_init``
            random initial configs.
        k: neighbours retrieved by landmarks.
        landmarks: probe configs of the landmark retrieval.
        prior_mean: the GP's prior mean is the neighbours' average mapping (needs neighbours);
            False: a constant mean.
        acquisition: ``ei`` or ``ucb``.
        ucb_beta: GP-UCB's ``beta`` in ``mu + sqrt(beta) sigma``; 4 is GPyOpt's default
            exploration weight 2 (the paper's library).
        n_init: random initial configs when no neighbours are given (the paper's Figure 2: 3).
        epochs: epochs of every trial (None: the maximal fidelity E).
        num_restarts, raw_samples: BoTorch ``optimize_acqf`` settings.
        maxiter: L-BFGS steps of each GP fit.
        lengthscale: of the prior-mean interpolant (None: the configs' median nearest-neighbour distance).
    """

    uses_transfer = True

    def __init__(self, neighbours: Sequence[str] | str | None = None, prior_mean: bool = True, acquisition: str = "ei", ucb_beta: float = 4.0,
                 n_init: int = 3, epochs: int | None = None, num_restarts: int = 4, raw_samples: int = 256, maxiter: int = 50,
                 lengthscale: float | None = None, k: int = 3, landmarks: int = 2) -> None:
        if isinstance(neighbours, str) and neighbours != "landmarks":
            raise ConfigurationError(f"siamese_bo neighbours must be a list of training tasks, 'landmarks' or null, got {neighbours!r}")
        for name, value in (("k", k), ("landmarks", landmarks)):
            if isinstance(value, bool) or int(value) < 1:
                raise ConfigurationError(f"siamese_bo {name} must be a positive integer, got {value!r}")
        self.k, self.landmarks = int(k), int(landmarks)
        if not isinstance(prior_mean, bool):
            raise ConfigurationError(f"siamese_bo prior_mean must be true or false, got {prior_mean!r}")
        if acquisition not in ACQUISITIONS:
            raise ConfigurationError(f"siamese_bo acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        if prior_mean and not neighbours:
            raise ConfigurationError("siamese_bo prior_mean needs neighbours (the k nearest training datasets); set prior_mean: false for a random start")
        if isinstance(n_init, bool) or int(n_init) < 1:
            raise ConfigurationError(f"siamese_bo n_init must be a positive integer, got {n_init!r}")
        if epochs is not None and (isinstance(epochs, bool) or int(epochs) < 1):
            raise ConfigurationError(f"siamese_bo epochs must be a positive integer or null, got {epochs!r}")
        self.by_landmarks = neighbours == "landmarks"
        self.neighbours = [] if self.by_landmarks or not neighbours else list(neighbours)
        self.prior_mean, self.acquisition, self.ucb_beta = bool(prior_mean), acquisition, float(ucb_beta)
        self.n_init, self.epochs = int(n_init), epochs
        self.num_restarts, self.raw_samples, self.maxiter = int(num_restarts), int(raw_samples), int(maxiter)
        self.lengthscale = lengthscale

    # ------------------------------------------------------------------ offline
    def fit(self, problem: SearchProblem) -> None:
        self.trial_epochs = min(int(self.epochs or problem.max_epochs), problem.max_epochs)
        self.prior: RBFInterpolant | None = None
        self.probes: list[int] = []
        if not self.neighbours and not self.by_landmarks:
            self.queue = self.sample_configs(self.n_init)
            return
        history = problem.history
        if history is None:
            raise ConfigurationError("siamese_bo with neighbours needs a database of the training datasets' mappings")
        unknown = [n for n in self.neighbours if n not in history.train_tasks]
        if unknown:
            raise ConfigurationError(f"siamese_bo neighbours {unknown} are not training tasks of the database ({len(history.train_tasks)} tasks)")
        if self.by_landmarks and self.k > len(history.train_tasks):
            raise ConfigurationError(f"siamese_bo k={self.k} exceeds the {len(history.train_tasks)} training tasks")
        column = min(self.trial_epochs, history.n_epochs) - 1
        self.maps = history.train_grids[:, :, column]  # (T, n_configs): every training task's mapping
        if self.by_landmarks:
            self.probes = best_mean_rank_configs(self.maps, self.landmarks)
            self.queue = [history.configs[i] for i in self.probes]
        else:
            self.start_from([history.train_tasks.index(n) for n in self.neighbours])

    def start_from(self, rows: list[int]) -> None:
        """Algorithm 2, lines 2-6 and the prior of line 8, for the training tasks ``rows``."""
        history = self.problem.history
        maps = self.maps[rows]  # (k, n_configs)
        asked = [dict(s.config) for s in self.trials.values()]
        taken = [history.configs.index(c) for c in asked if c in history.configs]
        self.queue = [history.configs[i] for i in neighbour_best_configs(maps, taken)]
        if self.prior_mean:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a config no neighbour recorded: all-NaN column
                average = np.nanmean(maps, axis=0)
            self.prior = RBFInterpolant(history.X, average, self.lengthscale)

    def retrieve_by_landmarks(self) -> None:
        """The k training tasks closest to the task's values at the probe configs."""
        configs = self.problem.history.configs
        values = {i: s.values[-1] for i in self.probes for s in self.trials.values() if s.values and dict(s.config) == configs[i]}
        if not values:  # every probe diverged: no landmark to compare, fall back on a random start
            self.queue = self.sample_configs(self.n_init)
            self.prior = None
            return
        probes = list(values)
        gaps = np.nanmean(np.abs(self.maps[:, probes] - np.array([values[i] for i in probes])), axis=1)
        gaps = np.where(np.isfinite(gaps), gaps, np.inf)
        rows = [int(i) for i in np.lexsort((np.arange(len(gaps)), gaps))[: self.k]]
        self.neighbours = [self.problem.history.train_tasks[i] for i in rows]
        self.start_from(rows)

    # ------------------------------------------------------------------ protocol
    def ask(self) -> Trial:
        if self.by_landmarks and not self.neighbours and not self.queue and len(self.trials) >= len(self.probes):
            self.retrieve_by_landmarks()
        if self.queue:
            return self.new_trial(self.queue.pop(0), self.trial_epochs)
        return self.new_trial(self.propose(), self.trial_epochs)

    def final_values(self) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Every told trial's config and its last told value (the trained model's; a diverged
        trial keeps its last good epoch's)."""
        configs, values = [], []
        for state in self.trials.values():
            if state.values:
                configs.append(dict(state.config))
                values.append(state.values[-1])
        return configs, np.asarray(values, dtype=np.float64)

    def recommend(self) -> dict[str, Any] | None:
        configs, values = self.final_values()
        return configs[int(np.argmax(values))] if len(values) else None

    def propose(self) -> dict[str, Any]:
        """``argmax_theta a(theta | GP)`` over the unit cube, decoded to a config; a config that
        decodes to one already asked (integer rounding, a one-hot argmax) is replaced by a random
        one, so no evaluation is spent twice."""
        configs, y = self.final_values()
        if len(y) == 0:
            return self.sample_configs(1)[0]
        # the GP fit draws from torch's global generator, which training a trial re-seeds and
        # loading a stored one does not: seed it from the run and the trial count, so a resumed
        # run proposes what the first one did (the searcher's own rng is left as it was)
        with torch.random.fork_rng():
            torch.manual_seed(int(self.problem.seed) * 100_003 + len(self.trials))
            return self._propose(configs, y)

    def _propose(self, configs: list[dict[str, Any]], y: np.ndarray) -> dict[str, Any]:
        from botorch.acquisition import LogExpectedImprovement, UpperConfidenceBound
        from botorch.optim import optimize_acqf

        model = fit_gp(self.to_unit(configs), y, self.prior, self.maxiter)
        if self.acquisition == "ei":
            acq = LogExpectedImprovement(model, best_f=float(y.max()))
        else:
            acq = UpperConfidenceBound(model, beta=self.ucb_beta)
        d = self.problem.space.dim
        bounds = torch.stack([torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, _ = optimize_acqf(acq, bounds, q=1, num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                                 options={"seed": int(self.rng.integers(2**31 - 1)), "maxiter": 100})
        config = self.from_unit(x.detach().numpy())[0]
        asked = [dict(s.config) for s in self.trials.values()]
        return self.sample_configs(1)[0] if config in asked else config


def best_mean_rank_configs(maps: np.ndarray, n: int) -> list[int]:
    """The ``n`` configs of best mean rank over the tasks of ``maps (T, n_configs)`` (rank 0 =
    a task's best; NaN ranks last), ties to the lower index: the landmark probes."""
    filled = np.where(np.isfinite(maps), maps, -np.inf)
    ranks = np.argsort(np.argsort(-filled, axis=1, kind="stable"), axis=1, kind="stable")
    mean = ranks.mean(axis=0)
    return [int(i) for i in np.lexsort((np.arange(len(mean)), mean))[: int(n)]]


def neighbour_best_configs(maps: np.ndarray, taken: Sequence[int] = ()) -> list[int]:
    """Algorithm 2, line 4: per neighbour ``h`` (rows of ``maps (k, n)``, NaN = not recorded) the
    config of its best value; a config already taken (``taken``, or by an earlier neighbour) is
    replaced by that neighbour's best config not taken yet. Ties go to the lower index. Returns
    k distinct indices."""
    before = [int(i) for i in taken]
    taken = list(before)
    for row in np.asarray(maps, dtype=np.float64):
        filled = np.where(np.isfinite(row), row, -np.inf)
        for index in np.lexsort((np.arange(len(row)), -filled)):
            if int(index) not in taken:
                taken.append(int(index))
                break
    return taken[len(before):]
