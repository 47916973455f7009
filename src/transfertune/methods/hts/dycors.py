"""pySOT's DYCORS search with the cubic RBF surrogate (HORD, the paper's [7]), asked and told.

pySOT runs a strategy under a POAP controller that calls the objective itself; here the trial
protocol trains the configs, so :class:`DycorsSearch` plays the controller's part: it accepts the
strategy's proposals (``ask``) and completes their evaluation records when the value is known
(``tell``). The strategy is pySOT's ``DYCORSStrategy`` in asynchronous mode (several proposals
may be in flight), minimising ``f`` on the unit cube of the space's encoding; its candidates
are continuous points of the cube, evaluated at the config they decode to.

HORD's setting: an initial Latin hypercube of 2(d + 1) points, then DYCORS. Started from known
evaluations instead (HTS as an initialiser, appendix A.1), those points are the initial design:
the strategy proposes them and they are completed at once with their known values, so pySOT's
own bookkeeping (surrogate, best point, step size) starts from them. A restart after
convergence draws a fresh Latin hypercube.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from poap.controller import EvalRecord
from pySOT.experimental_design import ExperimentalDesign
from pySOT.optimization_problems import OptimizationProblem
from pySOT.strategy import DYCORSStrategy

from transfertune.core.spaces import SearchSpace
from transfertune.methods.hts.surrogate import cubic_rbf, maximin_latin_hypercube, numpy_global_rng


class UnitCube(OptimizationProblem):
    """The domain ``[0, 1]^dim`` for pySOT (continuous; the trial protocol evaluates)."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.lb, self.ub = np.zeros(self.dim), np.ones(self.dim)
        self.int_var = np.array([], dtype=np.int64)
        self.cont_var = np.arange(self.dim)

    def eval(self, x):  # pragma: no cover - pySOT's interface; the searchers evaluate
        raise NotImplementedError("DycorsSearch is asked and told; nothing calls eval")


class GivenDesign(ExperimentalDesign):
    """The initial points given (``(n, dim)``), then ``restart()`` for a restart's new design."""

    def __init__(self, points: np.ndarray, restart: Callable[[], np.ndarray]) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.dim, self.num_pts = self.points.shape[1], len(self.points)
        self.restart = restart
        self.used = False

    def generate_points(self, lb=None, ub=None, int_var=None) -> np.ndarray:
        points = self.restart() if self.used else self.points
        self.used = True
        self.num_pts = len(points)
        return points


class DycorsSearch:
    """DYCORS on ``space``'s unit cube for ``max_evals`` evaluations of ``f`` (lower is better).

    Args:
        space: the search space (its encoding is the domain).
        max_evals: the evaluation budget, known evaluations included.
        rng: draws the designs and seeds the generator pySOT draws its candidates from.
        n_initial: size of the initial Latin hypercube (None: 2(d + 1), HORD's).
        known: ``(X, f)`` evaluations to start from instead of a Latin hypercube.
    """

    def __init__(
        self,
        space: SearchSpace,
        max_evals: int,
        rng: np.random.Generator,
        n_initial: int | None = None,
        known: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        dim = space.dim
        n_initial = int(n_initial or 2 * (dim + 1))
        self.state = np.random.RandomState(int(rng.integers(2**31 - 1)))

        def restart() -> np.ndarray:
            return maximin_latin_hypercube(space, n_initial, rng)

        points = np.asarray(known[0], dtype=np.float64) if known is not None else restart()
        self.records: dict[int, EvalRecord] = {}
        self._next = 0
        with numpy_global_rng(self.state):
            self.strategy = DYCORSStrategy(
                max_evals=int(max_evals), opt_prob=UnitCube(dim), exp_design=GivenDesign(points, restart), surrogate=cubic_rbf(space),
                asynchronous=True,
            )
        if known is not None:
            values = {tuple(x): float(v) for x, v in zip(points, np.asarray(known[1], dtype=np.float64))}
            for _ in range(len(points)):
                key, x = self.ask()
                self.tell(key, values[tuple(x)])

    @property
    def evaluations(self) -> int:
        """Completed evaluations (known ones included)."""
        return int(self.strategy.num_evals)

    def ask(self) -> tuple[int, np.ndarray] | None:
        """``(key, x)``: the next point to evaluate, ``x`` ``(dim,)`` in the unit cube; None when the
        strategy waits for an evaluation in flight or its budget is spent."""
        with numpy_global_rng(self.state):
            proposal = self.strategy.propose_action()
            if proposal is None or proposal.action != "eval":
                return None
            record = EvalRecord(proposal.args, status="pending")
            proposal.record = record
            proposal.accept()
        key, self._next = self._next, self._next + 1
        self.records[key] = record
        return key, np.array(proposal.args[0], dtype=np.float64)

    def tell(self, key: int, f: float) -> None:
        """The value ``f`` of the point asked under ``key``."""
        with numpy_global_rng(self.state):
            self.records.pop(key).complete(float(f))
