"""Hyperparameter prediction (Meta-HPO, seed 003, section 3.3): maximise the hp-learner over the
hyperparameters with L-BFGS.

The objective is ``theta -> phi_m(M, theta)`` for one data set's meta feature ``M``, on the unit
cube encoding of the search space (:meth:`SearchSpace.encode`). Relaxation of the discrete
hyperparameters: an integer is a continuous coordinate in ``[0, 1]`` (on the log scale when the
space says so) and a categorical's one-hot block is a set of free coordinates in ``[0, 1]``; the
box is kept by L-BFGS-B (L-BFGS with bound constraints, Byrd et al. 1995; SciPy), the gradient
comes from autograd. After the search every end point is rounded back into the space
(:meth:`SearchSpace.decode`: integers to the nearest value, categoricals to the largest
coordinate), re-encoded and scored again; the best *rounded* config wins. Several starts (the
best observed configs and random points) guard against local optima.

Where the search may go (``region``): ``box``, the whole unit cube (the paper), or ``local``, a
trust region: each run from an observed config stays within ``region_radius`` of it in every
unit-cube coordinate (random starts are then left out). With some 70 noisy observations the
learner is a weak surrogate away from them, and on the whole cube L-BFGS ran into corners no
observation was near; docs/methods/metahpo.md has the measurement behind the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError


@dataclass
class Prediction:
    """The chosen config and what the search saw.

    Attributes:
        config: the best rounded config, a member of the space.
        unit: its ``(d,)`` unit-cube encoding.
        predicted: the objective at ``unit`` (the learner's units).
        relaxed_predicted: the best objective before rounding.
        starts: number of L-BFGS runs.
    """

    config: dict
    unit: np.ndarray
    predicted: float
    relaxed_predicted: float
    starts: int


def lbfgs_maximise(objective: Callable[[torch.Tensor], torch.Tensor], starts: np.ndarray, max_iter: int = 100,
                   lower: np.ndarray | None = None, upper: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``objective`` from each row of ``starts`` over a box by L-BFGS-B.

    Args:
        objective: ``(n, d) tensor -> (n,) tensor``, differentiable.
        starts: ``(k, d)`` start points (clipped into their box).
        max_iter: L-BFGS iterations per start.
        lower, upper: the box, ``(d,)`` for all starts or ``(k, d)`` one per start; default ``[0, 1]^d``.

    Returns:
        ``(k, d)`` end points and their ``(k,)`` objective values.
    """
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    k, d = starts.shape
    lower = np.broadcast_to(np.zeros(d) if lower is None else np.asarray(lower, dtype=np.float64), (k, d))
    upper = np.broadcast_to(np.ones(d) if upper is None else np.asarray(upper, dtype=np.float64), (k, d))
    starts = np.clip(starts, lower, upper)

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.as_tensor(x, dtype=torch.float64).reshape(1, d).requires_grad_(True)
        value = objective(t).sum()
        (g,) = torch.autograd.grad(value, t)
        return -float(value.detach()), -g.reshape(-1).double().numpy()

    ends, values = [], []
    for x0, lo, hi in zip(starts, lower, upper):
        result = minimize(negative, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)), options={"maxiter": int(max_iter)})
        ends.append(np.clip(result.x, lo, hi))
        values.append(-float(result.fun))
    return np.asarray(ends), np.asarray(values)


def predict_config(
    objective: Callable[[torch.Tensor], torch.Tensor],
    space: SearchSpace,
    observed: np.ndarray | None = None,
    observed_y: np.ndarray | None = None,
    n_best_starts: int = 4,
    n_random_starts: int = 4,
    max_iter: int = 100,
    seed: int = 0,
    region: str = "box",
    region_radius: float = 0.1,
) -> Prediction:
    """The config of ``space`` that maximises ``objective`` (see the module docstring).

    Args:
        objective: the hp-learner at one meta feature, ``(n, d) -> (n,)`` on the unit cube.
        observed, observed_y: ``(K, d)`` unit-cube configs with their ``(K,)`` values; the
            ``n_best_starts`` best are starts.
        n_random_starts: further starts drawn from the space's own distribution.
        region, region_radius: where the search may go (see the module docstring).
    """
    starts = []
    if observed is not None and len(observed):
        if observed_y is None or len(observed_y) != len(observed):
            raise ConfigurationError("predict_config: observed configs and values differ in length")
        order = np.argsort(-np.asarray(observed_y), kind="stable")[: int(n_best_starts)]
        starts.append(np.asarray(observed, dtype=np.float64)[order])
    if region not in ("box", "local"):
        raise ConfigurationError(f"prediction.region must be 'box' or 'local', got {region!r}")
    if region == "local" and not starts:
        raise ConfigurationError("prediction.region 'local' needs observed configs to start from")
    if n_random_starts and region == "box":
        starts.append(space.encode(space.sample(int(n_random_starts), seed=seed)))
    if not starts:
        raise ConfigurationError("predict_config needs at least one start (observed configs or random starts)")
    X0 = np.vstack(starts)
    if X0.shape[1] != space.dim:
        raise ConfigurationError(f"configs have {X0.shape[1]} columns but the space '{space.name}' encodes to {space.dim}")
    if region == "local":
        if not region_radius > 0:
            raise ConfigurationError(f"prediction.region_radius must be > 0, got {region_radius!r}")
        lower, upper = np.clip(X0 - region_radius, 0.0, 1.0), np.clip(X0 + region_radius, 0.0, 1.0)
    else:
        lower, upper = np.zeros(space.dim), np.ones(space.dim)
    ends, relaxed = lbfgs_maximise(objective, X0, max_iter, lower, upper)
    configs = space.decode(ends)
    rounded = space.encode(configs)
    with torch.no_grad():
        scores = objective(torch.as_tensor(rounded, dtype=torch.float64)).double().numpy()
    best = int(np.argmax(scores))
    return Prediction(configs[best], rounded[best], float(scores[best]), float(relaxed.max()), len(X0))
