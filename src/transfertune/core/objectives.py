"""Black-box objectives of the tuning protocol (AT2 paper, section 2.1).

A query is one (config, epoch) of the test task. Epochs of a config come in increasing order:
to see epoch e the config must have been trained through epoch e-1. Every query costs one epoch
of budget.

:meth:`TabularObjective.evaluate` answers a :class:`~transfertune.core.trials.Trial` of the
trial protocol: its config is looked up among the recorded ones. A config that is not recorded
(a method that proposes continuous configs) is refused (``off_pool="refuse"``) or snapped to the
nearest recorded config (``off_pool="nearest"``): nearest by Euclidean distance in the unit-cube
encoding of :meth:`SearchSpace.encode` (numerics scaled to [0, 1], log-aware; categoricals
one-hot, so a different choice adds sqrt(2)). ``snaps`` maps each snapped trial to its row and distance.
The live counterpart that trains for real is :class:`transfertune.training.objective.TrainingObjective`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from transfertune.errors import TransfertuneError

if TYPE_CHECKING:
    from transfertune.core.spaces import SearchSpace
    from transfertune.core.trials import Trial

OFF_POOL = ("refuse", "nearest")


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
        configs: the recorded config of each grid row (needed to answer trials by config).
        space: the search space (needed to check and snap configs that are not recorded).
        off_pool: what :meth:`evaluate` does with a config that is not recorded: ``refuse``
            (an :class:`InvalidQuery` naming the nearest recorded config) or ``nearest`` (snap).
    """

    grid: np.ndarray
    budget: int
    allow_skip: bool = False
    history: list[Query] = field(default_factory=list)
    configs: Sequence[Mapping[str, Any]] | None = None
    space: "SearchSpace | None" = None
    off_pool: str = "refuse"
    snaps: dict[int, tuple[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grid = np.asarray(self.grid, dtype=np.float64)
        if self.grid.ndim != 2:
            raise ValueError(f"grid must be (n_configs, n_epochs), got shape {self.grid.shape}")
        if self.budget <= 0:
            raise TransfertuneError(f"the query budget must be positive, got {self.budget}")
        if self.off_pool not in OFF_POOL:
            raise TransfertuneError(f"off_pool must be one of {OFF_POOL}, got {self.off_pool!r}")
        if self.configs is not None and len(self.configs) != self.grid.shape[0]:
            raise ValueError(f"{len(self.configs)} configs for a grid of {self.grid.shape[0]} rows")
        self._trained = np.zeros(self.grid.shape[0], dtype=np.int64)
        self._trial_rows: dict[int, int] = {}  # trial id -> grid row
        self._trial_epochs: dict[int, int] = {}  # trial id -> epochs answered
        self._rows: dict[tuple, int] | None = None  # config key -> first grid row (built on first use)
        self._encoded: np.ndarray | None = None
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

    # ------------------------------------------------------------------ trials
    def evaluate(self, trial: "Trial") -> list[tuple[int, float]]:
        """Answer a trial: ``[(epoch, value)]`` for epochs ``trial.start_epoch + 1 .. trial.epoch``.

        Each epoch costs one query of the budget. A trial replays its row from epoch 1, whatever
        other trials of the same config did (a new trial is a new training run). Raises
        :class:`InvalidQuery` for a config outside the space, an off-pool config with
        ``off_pool="refuse"``, epochs out of order or past the record, and
        :class:`BudgetExhausted` when the budget runs out (the epochs before it are charged).
        """
        row = self._trial_rows.get(trial.trial_id)
        if row is None:
            row, distance = self.locate(trial.config, trial.pool_index)
            self._trial_rows[trial.trial_id] = row
            if distance > 0:
                self.snaps[trial.trial_id] = (row, distance)
        done = self._trial_epochs.get(trial.trial_id, 0)
        if trial.start_epoch != done:
            raise InvalidQuery(f"trial {trial.trial_id} starts at epoch {trial.start_epoch + 1}, but {done} epoch(s) were answered")
        if trial.epoch > self.trial_length[row]:
            raise InvalidQuery(
                f"config {row} has {self.trial_length[row]} recorded epochs; epoch {trial.epoch} is past its end"
            )
        out = []
        for e in range(done + 1, int(trial.epoch) + 1):
            if self.remaining <= 0:
                raise BudgetExhausted(f"the budget of {self.budget} queries is spent")
            value = float(self.grid[row, e - 1])
            self._trial_epochs[trial.trial_id] = e
            self.history.append(Query(self.n_queries + 1, row, e, value))
            out.append((e, value))
        return out

    def trial_row(self, trial_id: int) -> int:
        """Grid row that answers the trial (after its first :meth:`evaluate`)."""
        return self._trial_rows[trial_id]

    def snap_distance(self, trial_id: int) -> float:
        """Distance from the trial's config to the recorded config that answered it (0: recorded)."""
        return self.snaps.get(trial_id, (0, 0.0))[1]

    def locate(self, config: Mapping[str, Any], pool_index: int | None = None) -> tuple[int, float]:
        """``(row, distance)`` of the recorded config that answers ``config`` (see ``off_pool``)."""
        if self.configs is None:
            if pool_index is None:
                raise InvalidQuery("this objective has no configs: give it configs to answer trials by config")
            self._check_index(pool_index)
            return int(pool_index), 0.0
        if pool_index is not None:
            self._check_index(pool_index)
            if self.configs[pool_index] is not config and self.configs[pool_index] != config:
                raise InvalidQuery(f"config {dict(config)} is not recorded config {pool_index} ({dict(self.configs[pool_index])})")
            return int(pool_index), 0.0
        if self._rows is None:
            self._rows = {}
            for i, c in enumerate(self.configs):
                self._rows.setdefault(_key(c), i)
        try:
            row = self._rows.get(_key(config))
        except TypeError:  # an unhashable value: not a config of any space
            row = None
        if row is not None:
            return row, 0.0
        if self.space is None:
            raise InvalidQuery(f"config {dict(config)} is not recorded, and this objective has no space to snap it with")
        problems = self.space.problems(config)
        if problems:
            raise InvalidQuery(f"config outside the space '{self.space.name}': " + "; ".join(problems))
        if self._encoded is None:
            self._encoded = self.space.encode(self.configs)
        distances = np.linalg.norm(self._encoded - self.space.encode([config])[0], axis=1)
        row = int(np.argmin(distances))
        if self.off_pool == "refuse":
            raise InvalidQuery(
                f"config {dict(config)} is not one of the {len(self.configs)} recorded configs (nearest: row {row} at "
                f"unit-cube distance {distances[row]:.4g}); set off_pool='nearest' to snap it"
            )
        return row, float(distances[row])

    def _check_index(self, index: int) -> None:
        if not 0 <= int(index) < self.n_configs:
            raise InvalidQuery(f"config index {index} is not in 0..{self.n_configs - 1}")


def _key(config: Mapping[str, Any]) -> tuple:
    return tuple(sorted(config.items()))
