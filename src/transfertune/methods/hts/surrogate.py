"""The surrogates S_S and S_T of HTS (seed 001, appendix A.3), on pySOT.

A surrogate of a function observed at ``n`` points ``x_i`` is pySOT's RBF interpolant with the
cubic kernel and a linear tail::

    S(x) = sum_i lambda_i * phi(||x - x_i||) + p(x),    phi(r) = r^3,    p(x) = c_0 + c^T x

whose coefficients solve pySOT's linear system (Gutmann 2001, the paper's [12])::

    [ 0   P^T       ] [c      ]   [0]
    [ P   Phi + eta ] [lambda ] = [f],   Phi_ij = phi(||x_i - x_j||),  P_i = (1, x_i)

Coordinates are the unit-cube encoding of :meth:`SearchSpace.encode` (each range normalised to
[0, 1], as appendix A.3 does; categoricals one-hot). The system has a unique solution when P has
full column rank: among the points, d + 1 affinely independent ones in the tail's d
coordinates; :func:`fit_rbf` checks that and says so in one line.

One-hot columns: on encoded configs the columns of a categorical sum to 1, so with all of them
the tail's columns (1, x) are linearly dependent and the system is singular. The tail therefore
leaves out the first one-hot column of each categorical (:func:`tail_columns`); the kernel still
measures distances in the whole cube. For a space of numeric hyperparameters only (the HTS CNN's
Table 1 space) the tail is pySOT's ``LinearTail`` itself.

pySOT 0.3.3 draws its Latin hypercubes through pyDOE2 with a fresh, unseeded ``RandomState`` and
its DYCORS candidates from NumPy's global generator; the designs here come from scipy's seeded
``qmc.LatinHypercube`` and :func:`numpy_global_rng` runs pySOT on a run's own generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from pySOT.surrogate import CubicKernel, LinearTail, RBFInterpolant
from scipy.stats import qmc

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError


def tail_columns(space: SearchSpace) -> np.ndarray:
    """Encoded columns the linear tail uses: all but the first one-hot column of each categorical."""
    keep: list[int] = []
    for hp, part in zip(space.hyperparameters, space.column_slices().values()):
        columns = list(range(part.start, part.stop))
        keep.extend(columns[1:] if hp.is_categorical else columns)
    return np.asarray(keep, dtype=np.int64)


class SubsetLinearTail(LinearTail):
    """pySOT's linear tail over a subset of the coordinates: basis ``{1} U {x_j : j in columns}``."""

    def __init__(self, dim: int, columns: np.ndarray) -> None:
        super().__init__(dim)
        self.columns = np.asarray(columns, dtype=np.int64)
        self.dim_tail = 1 + len(self.columns)

    def eval(self, X: np.ndarray) -> np.ndarray:
        """``(n, dim) -> (n, 1 + len(columns))``."""
        return super().eval(X)[:, np.concatenate([[0], 1 + self.columns])]

    def deriv(self, x: np.ndarray) -> np.ndarray:
        """``(dim, 1 + len(columns))``: the gradient of each basis function."""
        return super().deriv(x)[:, np.concatenate([[0], 1 + self.columns])]


def cubic_rbf(space: SearchSpace) -> RBFInterpolant:
    """An empty pySOT RBF interpolant on the space's unit cube: cubic kernel, linear tail."""
    dim, columns = space.dim, tail_columns(space)
    tail = LinearTail(dim) if len(columns) == dim else SubsetLinearTail(dim, columns)
    return RBFInterpolant(dim=dim, lb=np.zeros(dim), ub=np.ones(dim), kernel=CubicKernel(), tail=tail)


def affine_rank(X: np.ndarray, columns: np.ndarray) -> int:
    """Dimension of the affine hull of the rows of ``X[:, columns]`` (-1 for no rows)."""
    if len(X) == 0:
        return -1
    P = np.hstack([np.ones((len(X), 1)), np.asarray(X, dtype=np.float64)[:, columns]])
    return int(np.linalg.matrix_rank(P)) - 1


def fit_rbf(space: SearchSpace, X: np.ndarray, f: np.ndarray, what: str) -> RBFInterpolant:
    """S fitted on ``n`` observations: ``X`` ``(n, space.dim)`` in the unit cube, ``f`` ``(n,)``.

    Raises a one-line :class:`ConfigurationError` (naming ``what``, e.g. "the source
    observations") when the points do not determine the interpolant: fewer than d + 1 affinely
    independent points in the tail's d coordinates, or non-finite values.
    """
    X = np.asarray(X, dtype=np.float64).reshape(-1, space.dim)
    f = np.asarray(f, dtype=np.float64).ravel()
    if len(X) != len(f):
        raise ValueError(f"{len(X)} points but {len(f)} values")
    if not np.isfinite(f).all():
        raise ConfigurationError(f"{what}: {int((~np.isfinite(f)).sum())} of {len(f)} values are not finite")
    columns = tail_columns(space)
    d = len(columns)
    rank = affine_rank(X, columns)
    if rank < d:
        raise ConfigurationError(
            f"{what}: {len(X)} observation(s) span an affine space of dimension {max(rank, 0)}, but pySOT's cubic RBF with a "
            f"linear tail in d = {d} coordinates needs at least d + 1 = {d + 1} affinely independent points"
        )
    surrogate = cubic_rbf(space)
    surrogate.add_points(X, f)
    return surrogate


def predict(surrogate: RBFInterpolant, X: np.ndarray) -> np.ndarray:
    """``S(X)`` for ``X`` ``(n, dim)``, as ``(n,)``."""
    return np.asarray(surrogate.predict(np.atleast_2d(X)), dtype=np.float64).ravel()


def snap(space: SearchSpace, U: np.ndarray) -> np.ndarray:
    """Points of the cube ``(n, dim)`` moved to the encoding of the configs they decode to (integers
    rounded, one-hots made exact): the points a config can actually be evaluated at."""
    return space.encode(space.decode(U))


def latin_hypercube(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` Latin hypercube samples of the space: one scipy design in ``[0, 1]^dim``, snapped, ``(n, dim)``."""
    return snap(space, qmc.LatinHypercube(d=space.dim, seed=rng).random(int(n)))


def maximin_latin_hypercube(space: SearchSpace, n: int, rng: np.random.Generator, iterations: int = 100) -> np.ndarray:
    """An experimental design of ``n`` points, ``(n, dim)``: of ``iterations`` Latin hypercubes, the
    one whose closest two (snapped) points are farthest apart among those of full affine rank in
    the tail's coordinates (pySOT's criterion for its own designs; full rank so that an RBF can be
    fitted on them). Falls back to the best by distance alone when none has full rank."""
    columns = tail_columns(space)
    full = min(int(n) - 1, len(columns))
    best, best_score, best_ranked = None, -np.inf, False
    for _ in range(int(iterations)):
        design = latin_hypercube(space, n, rng)
        ranked = affine_rank(design, columns) == full
        distances = np.linalg.norm(design[:, None, :] - design[None, :, :], axis=-1)
        np.fill_diagonal(distances, np.inf)
        score = float(distances.min()) if n > 1 else 0.0
        if (ranked, score) > (best_ranked, best_score):
            best, best_score, best_ranked = design, score, ranked
    return best


@contextmanager
def numpy_global_rng(state: np.random.RandomState) -> Iterator[None]:
    """Run a block on ``state`` as NumPy's global generator (pySOT draws from it), then put the
    caller's global generator back; ``state`` keeps where the block left it."""
    saved = np.random.get_state()
    np.random.set_state(state.get_state())
    try:
        yield
    finally:
        state.set_state(np.random.get_state())
        np.random.set_state(saved)
