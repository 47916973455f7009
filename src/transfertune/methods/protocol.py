"""The trial protocol every method speaks, on a recorded catalog or on live training.

A :class:`Searcher` hands out :class:`~transfertune.core.trials.Trial` s and hears back one
epoch at a time::

    searcher.setup(problem)                   # offline: fit meta-models on past tuning
    trial = searcher.ask()                    # config + epoch to train it to (None: wait)
    for epoch in trial.start_epoch + 1 .. trial.epoch:
        searcher.tell(trial, epoch, metrics)  # {"val_acc": 0.93, ...} or the value itself
    searcher.fail(trial, reason)              # a diverged run: the config is not continued
    config = searcher.recommend()             # the config the method would pick now

Several trials may be in flight at once (asked, not fully told), so workers can train in
parallel. Continuing a config keeps its ``trial_id``; ``start_epoch`` says how far it already is.
The budget counts epochs: every told epoch costs one, an ask is cut to the epochs left, and
asking with nothing left raises :class:`~transfertune.core.objectives.BudgetExhausted`.

Two kinds of method:
- :class:`PoolSearcher` runs any pool :class:`~transfertune.methods.base.Method` (row indices
  of recorded configs: AT2, the baselines) through the protocol, one epoch per ask;
- :class:`SpaceSearcher` is the base of methods that propose any config of the search space
  (continuous hyperparameters, several epochs per ask); ``random_space`` is one.

Higher values of the objective metric are better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from transfertune.core.objectives import BudgetExhausted
from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial, objective_value
from transfertune.errors import ConfigurationError, ProtocolError
from transfertune.methods.base import Method, TransferProblem

if TYPE_CHECKING:
    from transfertune.core.catalog import ObservationCatalog

RUNNING, IDLE, FAILED = "running", "idle", "failed"


@dataclass
class SearchProblem:
    """Everything a searcher may use to tune ``task``.

    Attributes:
        space: the search space every config belongs to.
        max_epochs: the maximal fidelity E (a trial's epochs are 1..E).
        budget: epochs the search may spend in all (told epochs plus epochs in flight).
        seed: seed of this run; searchers draw all randomness from it.
        task: name of the task being tuned.
        metric: the objective metric told for each epoch (higher is better).
        history: the config pool and the training tasks' recorded curves: what pool methods
            pick from and transfer methods learn from (None when there is no database).
        database: the whole tuning database, for methods that need more than the curves
            (task descriptions, raw data); None in catalog replay.
    """

    space: SearchSpace
    max_epochs: int
    budget: int
    seed: int
    task: str
    metric: str = "value"
    history: TransferProblem | None = None
    database: "ObservationCatalog | None" = None

    @classmethod
    def from_transfer(cls, problem: TransferProblem, metric: str = "value") -> "SearchProblem":
        """The problem of a catalog replay episode (the test task behind a tabular objective)."""
        return cls(problem.space, problem.n_epochs, problem.budget, problem.seed, problem.test_task, metric, problem)


@dataclass
class TrialState:
    """A trial as the searcher sees it.

    ``values[e - 1]`` is the objective value told for epoch e; ``target`` the epoch it was
    last asked to reach (``target > told`` while it is in flight).
    """

    trial_id: int
    config: Mapping[str, Any]
    pool_index: int | None
    target: int
    status: str = RUNNING
    values: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    reason: str = ""

    @property
    def told(self) -> int:
        return len(self.values)

    @property
    def in_flight(self) -> bool:
        return self.status == RUNNING

    @property
    def best(self) -> float:
        return max(self.values) if self.values else -np.inf


class Searcher(ABC):
    """Base class: trial bookkeeping, budget and the checks of every call.

    Subclasses implement :meth:`ask` with :meth:`new_trial` / :meth:`continue_trial`, and may
    override the hooks :meth:`fit` (offline), :meth:`observe` (one told epoch),
    :meth:`observe_failure` and :meth:`recommend`.
    """

    name: ClassVar[str] = "searcher"
    uses_transfer: ClassVar[bool] = False

    def setup(self, problem: SearchProblem) -> None:
        self.problem = problem
        self.rng = np.random.default_rng(problem.seed)
        self.trials: dict[int, TrialState] = {}
        self.epochs_told = 0
        self.epochs_pending = 0  # asked, not told yet
        self.fit(problem)

    # ------------------------------------------------------------------ hooks
    def fit(self, problem: SearchProblem) -> None:
        """Offline part (meta-model fitting); default: nothing."""

    @abstractmethod
    def ask(self) -> Trial | None:
        """The next trial, or None when nothing can start before a trial in flight is told."""

    def observe(self, state: TrialState, epoch: int, value: float) -> None:
        """Called after ``state`` was told ``value`` for ``epoch``."""

    def observe_failure(self, state: TrialState, reason: str) -> None:
        """Called after ``state`` failed (it will not be continued)."""

    def recommend(self) -> dict[str, Any] | None:
        """Default: the config of the best value told so far (None before any tell)."""
        best = self.best_trial()
        return dict(best.config) if best is not None else None

    # ------------------------------------------------------------------ protocol
    @property
    def remaining(self) -> int:
        """Epochs of budget not told and not in flight."""
        return int(self.problem.budget) - self.epochs_told - self.epochs_pending

    @property
    def in_flight(self) -> list[int]:
        return [t for t, s in self.trials.items() if s.in_flight]

    def tell(self, trial: Trial | int, epoch: int, metrics: Mapping[str, Any] | float) -> None:
        """Report the objective metric of ``trial`` after ``epoch`` (epochs in order, one call each)."""
        state, value, values = self.check_tell(trial, epoch, metrics)
        state.values.append(value)
        state.metrics.append(values)
        self.epochs_told += 1
        self.epochs_pending -= 1
        if state.told == state.target:
            state.status = IDLE
        self.observe(state, int(epoch), value)

    def check_tell(self, trial: Trial | int, epoch: int, metrics: Mapping[str, Any] | float) -> tuple[TrialState, float, dict[str, float]]:
        """What :meth:`tell` would record, or its one-line :class:`ProtocolError`; changes nothing."""
        state = self._running(trial, "tell")
        epoch = int(epoch)
        if epoch != state.told + 1:
            raise ProtocolError(
                f"tell: trial {state.trial_id} has {state.told} epoch(s) told, so the next is epoch {state.told + 1}, not {epoch}"
            )
        value, values = objective_value(metrics, self.problem.metric, f"tell: trial {state.trial_id} epoch {epoch}")
        return state, value, values

    def fail(self, trial: Trial | int, reason: str = "") -> None:
        """Record that ``trial`` diverged or broke: its told epochs stay, it is never continued."""
        state = self._running(trial, "fail")
        self.epochs_pending -= state.target - state.told
        state.target = state.told
        state.status, state.reason = FAILED, str(reason)
        self.observe_failure(state, state.reason)

    def _running(self, trial: Trial | int, call: str) -> TrialState:
        trial_id = trial.trial_id if isinstance(trial, Trial) else trial
        if isinstance(trial_id, bool) or not isinstance(trial_id, (int, np.integer)):
            raise ProtocolError(f"{call}: expected a Trial or a trial id, got {trial!r}")
        state = self.trials.get(int(trial_id))
        if state is None:
            raise ProtocolError(f"{call}: trial {trial_id} was never asked (known trials: 0..{len(self.trials) - 1})")
        if isinstance(trial, Trial) and trial.config is not state.config and dict(trial.config) != state.config:
            raise ProtocolError(f"{call}: trial {trial_id}'s config {dict(trial.config)} is not the one asked ({state.config})")
        if state.status == FAILED:
            raise ProtocolError(f"{call}: trial {trial_id} failed ({state.reason or 'no reason given'}); it takes no more results")
        if state.status == IDLE:
            raise ProtocolError(
                f"{call}: trial {trial_id} is finished: its {state.told} asked epoch(s) were all told; ask() continues it if the method wants more"
            )
        return state

    # ------------------------------------------------------------------ helpers for subclasses
    def new_trial(self, config: Mapping[str, Any], epoch: int, pool_index: int | None = None, validate: bool = True) -> Trial:
        """Register a new trial of ``config`` trained to ``epoch`` (cut to the budget left).

        ``validate=False`` (a recorded pool config) skips the space check and keeps the config
        object itself.
        """
        if validate:
            config = dict(config)
            problems = self.problem.space.problems(config)
            if problems:
                raise ProtocolError(f"method {self.name!r} asked a config outside the space '{self.problem.space.name}': " + "; ".join(problems))
        trial_id = len(self.trials)
        target = self._target(trial_id, 0, epoch)
        self.trials[trial_id] = TrialState(trial_id, config, pool_index, target)
        self.epochs_pending += target
        return Trial(trial_id, config, target, 0, pool_index)

    def continue_trial(self, trial_id: int, epoch: int) -> Trial:
        """Ask for more epochs of an existing trial (same id, cut to the budget left)."""
        state = self.trials.get(int(trial_id))
        if state is None:
            raise ProtocolError(f"method {self.name!r} continued trial {trial_id}, which was never asked")
        if state.status != IDLE:
            raise ProtocolError(f"method {self.name!r} continued trial {trial_id}, which is {state.status}")
        target = self._target(state.trial_id, state.told, epoch)
        state.target, state.status = target, RUNNING
        self.epochs_pending += target - state.told
        return Trial(state.trial_id, state.config, target, state.told, state.pool_index)

    def _target(self, trial_id: int, told: int, epoch: int) -> int:
        epoch = int(epoch)
        if not told < epoch <= self.problem.max_epochs:
            raise ProtocolError(
                f"method {self.name!r} asked trial {trial_id} to epoch {epoch}; it has {told} and the maximum is {self.problem.max_epochs}"
            )
        if self.remaining <= 0:
            raise BudgetExhausted(f"the budget of {self.problem.budget} epochs is spent or in flight")
        return min(epoch, told + self.remaining)

    def best_trial(self) -> TrialState | None:
        """The trial with the best value told so far (the first such; None before any tell)."""
        best, best_value = None, -np.inf
        for state in self.trials.values():
            if state.values and state.best > best_value:
                best, best_value = state, state.best
        return best

    def observations(self, epoch: int | None = None) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Told trials as ``(configs, y)``: ``y[i]`` is trial i's value at ``epoch`` (trials told
        that far), or its best value (``epoch=None``). Shapes: ``len(configs) == len(y)``."""
        configs, values = [], []
        for state in self.trials.values():
            if epoch is None and state.values:
                configs.append(state.config)
                values.append(state.best)
            elif epoch is not None and state.told >= epoch:
                configs.append(state.config)
                values.append(state.values[epoch - 1])
        return configs, np.asarray(values, dtype=np.float64)


class PoolSearcher(Searcher):
    """Runs a pool :class:`Method` through the trial protocol.

    Each ask is one epoch of one pool config; trial ids follow the configs (a config's
    first ask creates its trial, later asks continue it). While a config has an epoch in
    flight the method sees it as not continuable; if the method still asks for it (it can
    only proceed after that result, as Hyperband waits for its rung), ``ask`` returns None.
    A failed trial's config gets no more epochs (its ``trial_length`` is cut to what it has).
    """

    def __init__(self, method: Method) -> None:
        self.method = method
        self.name = method.name
        self.uses_transfer = method.uses_transfer

    def fit(self, problem: SearchProblem) -> None:
        if problem.history is None:
            raise ConfigurationError(
                f"method {self.name!r} picks configs from a pool of recorded ones: give it a database (or a pool) of past tuning on this space"
            )
        # own copy: a failure cuts a config's length, and episodes of several methods share the problem
        self.pool = replace(problem.history, trial_length=problem.history.trial_length.copy())
        self._trial_of_row: dict[int, int] = {}
        self.method.setup(self.pool)

    def ask(self) -> Trial | None:
        if self.remaining <= 0:
            raise BudgetExhausted(f"the budget of {self.problem.budget} epochs is spent or in flight")
        method = self.method
        index = int(method.ask())
        if index in method.in_flight:
            return None
        if not 0 <= index < self.pool.n_configs:
            raise ProtocolError(f"method {self.name!r} asked config index {index}, not in 0..{self.pool.n_configs - 1}")
        epoch = method.trained_epochs(index) + 1
        if epoch > self.pool.trial_length[index]:
            raise RuntimeError(f"method {self.name!r} asked config {index}, which has no epoch left")
        trial_id = self._trial_of_row.get(index)
        if trial_id is None:
            trial = self.new_trial(self.pool.configs[index], epoch, pool_index=index, validate=False)
            self._trial_of_row[index] = trial.trial_id
        else:
            trial = self.continue_trial(trial_id, epoch)
        method.in_flight.add(index)
        return trial

    def observe(self, state: TrialState, epoch: int, value: float) -> None:
        self.method.in_flight.discard(state.pool_index)
        self.method.tell(state.pool_index, epoch, value)

    def observe_failure(self, state: TrialState, reason: str) -> None:
        self.method.in_flight.discard(state.pool_index)
        self.pool.trial_length[state.pool_index] = state.told

    def recommend_index(self) -> int:
        """Pool row of the recommended config."""
        return int(self.method.recommend())

    def recommend(self) -> dict[str, Any]:
        return dict(self.pool.configs[self.recommend_index()])


class SpaceSearcher(Searcher):
    """Base of methods that propose any config of the search space.

    Implement :meth:`ask` with ``self.new_trial(config, epoch)`` (configs are checked against
    the space) or ``self.continue_trial(trial_id, epoch)``; the helpers below convert between
    configs and the unit cube every surrogate sees. ``problem.history`` holds the recorded
    curves of the training tasks when a database is given (transfer methods), and
    ``problem.database`` the database itself when the run is live.
    """

    def sample_configs(self, n: int) -> list[dict[str, Any]]:
        """``n`` configs from the space's own distributions, seeded by this run's generator."""
        return self.problem.space.sample(int(n), seed=int(self.rng.integers(2**31 - 1)))

    def to_unit(self, configs: list[Mapping[str, Any]]) -> np.ndarray:
        """``(n, d)`` unit-cube encoding (see :meth:`SearchSpace.encode`)."""
        return self.problem.space.encode(configs)

    def from_unit(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Configs of unit-cube rows ``(n, d)`` (argmax for one-hots, rounding for integers)."""
        return self.problem.space.decode(X)
