"""Black-box objectives of the tuning protocol (AT2 paper, section 2.1).

A query is one (config, epoch) of the test task. Epochs of a config come in increasing order:
to see epoch e the config must have been trained through epoch e-1. Every query costs one epoch
of budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transfertune.errors import TransfertuneError


class InvalidQuery(TransfertuneError):
    """A query that breaks the protocol (unknown config, epoch out of order, past the record)."""


class BudgetExhausted(TransfertuneError):
    """The query budget is spent."""


@dataclass
class Query:
    q: int
    config_index: int
    epoch: int
    value: float


@dataclass
class TabularObjective:
    """Lookup of recorded learning curves: the test task of a catalog as a black box.

    Args:
        grid: ``(n_configs, n_epochs)`` recorded metric values, epoch e in column e-1; NaN
            after a trial's recorded end (a diverged or shorter run).
        budget: number of epochs that may be queried.
        allow_skip: when True a query may jump ahead; the skipped epochs are trained (and
            charged) first, as a real trainer would have to.
    """

    grid: np.ndarray
    budget: int
    allow_skip: bool = False
    history: list[Query] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.grid = np.asarray(self.grid, dtype=np.float64)
        if self.grid.ndim != 2:
            raise ValueError(f"grid must be (n_configs, n_epochs), got shape {self.grid.shape}")
        if self.budget <= 0:
            raise TransfertuneError(f"the query budget must be positive, got {self.budget}")
        self._trained = np.zeros(self.grid.shape[0], dtype=np.int64)
        # How far each config's record goes: leading finite entries of its row.
        finite = np.isfinite(self.grid)
        self.trial_length = np.where(finite.all(axis=1), self.grid.shape[1], np.argmin(finite, axis=1))

    @property
    def n_configs(self) -> int:
        return self.grid.shape[0]

    @property
    def n_queries(self) -> int:
        return len(self.history)

    @property
    def remaining(self) -> int:
        return self.budget - self.n_queries

    @property
    def optimum(self) -> float:
        """The best value anywhere on the task (the reference of simple regret)."""
        return float(np.nanmax(self.grid))

    def trained_epochs(self, config_index: int) -> int:
        return int(self._trained[config_index])

    def query(self, config_index: int, epoch: int | None = None) -> float:
        """Observe ``config_index`` at ``epoch`` (default: its next epoch); returns the value."""
        if not 0 <= config_index < self.n_configs:
            raise InvalidQuery(f"config index {config_index} is not in 0..{self.n_configs - 1}")
        next_epoch = int(self._trained[config_index]) + 1
        epoch = next_epoch if epoch is None else int(epoch)
        if epoch < next_epoch:
            raise InvalidQuery(f"config {config_index} epoch {epoch} was already queried (next is {next_epoch})")
        if epoch > next_epoch and not self.allow_skip:
            raise InvalidQuery(
                f"config {config_index} epoch {epoch} asked before epoch {next_epoch}: epochs are queried in order"
            )
        if epoch > self.trial_length[config_index]:
            raise InvalidQuery(
                f"config {config_index} has {self.trial_length[config_index]} recorded epochs; epoch {epoch} is past its end"
            )
        value = np.nan
        for e in range(next_epoch, epoch + 1):  # skipped epochs are trained and charged too
            if self.remaining <= 0:
                raise BudgetExhausted(f"the budget of {self.budget} queries is spent")
            value = float(self.grid[config_index, e - 1])
            self._trained[config_index] = e
            self.history.append(Query(self.n_queries + 1, config_index, e, value))
        return value

    def can_continue(self, config_index: int) -> bool:
        """Whether the config has a next epoch to query."""
        return bool(self._trained[config_index] < self.trial_length[config_index])
