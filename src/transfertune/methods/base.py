"""The ask/tell protocol every catalog method speaks.

The runner builds a :class:`TransferProblem` (what a method may know: the candidate configs,
their encoding, the training tasks' recorded curves, the budget) and then loops::

    method.setup(problem)                 # offline: fit meta-models on the training tasks
    for q in 1..Q:
        i = method.ask()                  # index of the config to train one more epoch
        y = objective.query(i)            # the test task answers (epochs come in order)
        method.tell(i, epoch, y)
        rec = method.recommend()          # config the method would pick now (for F_q)

A new method is a subclass registered with :func:`transfertune.methods.registry.register`;
the benchmark picks it up by name with no change to its code.

Live tuning runs the same methods through the trial protocol of
:mod:`transfertune.methods.protocol` (``PoolSearcher``), where several configs may be training
at once: a config with an epoch *in flight* (asked, not yet told) cannot be continued, so
:meth:`Method.can_continue` and :meth:`Method.continuable` leave it out and a second ``ask``
picks another config. In sequential use nothing is ever in flight during ``ask``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from transfertune.core.spaces import SearchSpace


@dataclass
class TransferProblem:
    """Everything a method may use to tune ``test_task``.

    Attributes:
        config_ids: ``(n,)`` catalog ids of the candidate configs; methods speak row indices.
        configs: the n config dicts (active hyperparameters), aligned with ``config_ids``.
        X: ``(n, d)`` unit-cube encoding of the configs.
        space: the search space.
        n_epochs: the maximal fidelity E (epochs are 1..E).
        train_tasks: names of the T training tasks.
        train_grids: ``(T, n, E)`` recorded metric on the training tasks (NaN = not recorded).
        test_task: name of the task being tuned (its values are only reachable by querying).
        trial_length: ``(n,)`` how many epochs each config can be trained on the test task.
        budget: Q, the number of queries.
        seed: seed of this repetition; methods draw all randomness from it.
    """

    config_ids: np.ndarray
    configs: list[dict[str, Any]]
    X: np.ndarray
    space: SearchSpace
    n_epochs: int
    train_tasks: tuple[str, ...]
    train_grids: np.ndarray
    test_task: str
    trial_length: np.ndarray
    budget: int
    seed: int

    @property
    def n_configs(self) -> int:
        return len(self.config_ids)


class Method(ABC):
    """Base class: keeps the test-task curves observed so far.

    Subclasses take every setting as a constructor keyword (scikit-learn style) and implement
    :meth:`fit` (offline), :meth:`ask` and optionally :meth:`recommend`/:meth:`tell`.
    """

    name: ClassVar[str] = "method"
    uses_transfer: ClassVar[bool] = True
    in_flight: frozenset[int] | set[int] = frozenset()

    def setup(self, problem: TransferProblem) -> None:
        self.problem = problem
        self.rng = np.random.default_rng(problem.seed)
        self.curves: list[list[float]] = [[] for _ in range(problem.n_configs)]
        self.in_flight = set()  # configs with an asked epoch not told yet (parallel trials)
        self.fit(problem)

    def fit(self, problem: TransferProblem) -> None:
        """Offline part (meta-model fitting); default: nothing."""

    @abstractmethod
    def ask(self) -> int:
        """Index of the config whose next epoch to query."""

    def tell(self, config_index: int, epoch: int, value: float) -> None:
        curve = self.curves[config_index]
        if epoch != len(curve) + 1:
            raise ValueError(f"config {config_index}: told epoch {epoch} after {len(curve)} epochs")
        curve.append(float(value))

    def recommend(self) -> int:
        """Default: the config with the best value observed so far (first config if none)."""
        best, best_index = -np.inf, 0
        for i, curve in enumerate(self.curves):
            if curve and max(curve) > best:
                best, best_index = max(curve), i
        return best_index

    # helpers for subclasses
    def trained_epochs(self, config_index: int) -> int:
        return len(self.curves[config_index])

    def can_continue(self, config_index: int) -> bool:
        """Whether the config has an epoch left and none in flight."""
        return self.trained_epochs(config_index) < self.problem.trial_length[config_index] and config_index not in self.in_flight

    def epoch_counts(self) -> np.ndarray:
        """``(n,)`` int: how many epochs of each config have been queried."""
        return np.array([len(c) for c in self.curves], dtype=np.int64)

    def continuable(self) -> np.ndarray:
        """Boolean mask ``(n,)`` of configs that still have an epoch to query and none in flight."""
        mask = self.epoch_counts() < self.problem.trial_length
        if self.in_flight:
            mask[list(self.in_flight)] = False
        return mask

    def observed_best(self) -> np.ndarray:
        """``(n,)`` best observed value per config, -inf where nothing was observed."""
        return np.array([max(c) if c else -np.inf for c in self.curves])
