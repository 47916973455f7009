"""Hyperband (Li et al. 2017) and BOHB (Falkner, Klein, Hutter 2018) on epochs, one epoch per query.

The resource is the epoch: the maximal budget R is E, rung budgets are ``R * eta**(i - s)``
epochs rounded to integers. Brackets run one after another, ``s = s_max .. 0``, then again.
The sequential protocol trains a rung config by config, each epoch by epoch up to the rung's
budget (a promoted config resumes from the epochs it already has: curves are continuable);
when every config of the rung reached it, the best ``n_{i+1}`` by their value at the budget
epoch go on. Rung-0 configs are drawn one at a time when needed, so a model-based proposal
(BOHB, ABLR-HB) sees every result so far. New configs come from those never trained; once all
were, from the continuable ones outside the bracket.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import optuna

from transfertune.core.spaces import INACTIVE_VALUE
from transfertune.errors import ConfigurationError
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.registry import register

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Rung:
    size: int  # configs evaluated in this rung
    budget: int  # epochs each of them is trained to


def hyperband_brackets(max_epochs: int, eta: int = 3, min_epochs: int = 1) -> list[list[Rung]]:
    """Li et al. (2017)'s bracket schedule with the epoch as resource.

    ``s_max`` is the largest s with ``min_epochs * eta**s <= max_epochs``. Bracket s starts
    ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` configs at ``max_epochs * eta**-s`` epochs; rung i
    keeps ``floor(n * eta**-i)`` of them at ``max_epochs * eta**(i - s)`` epochs.

    Returns:
        The brackets in run order (``s = s_max`` first), each a list of rungs.
    """
    if eta < 2 or min_epochs < 1 or max_epochs < min_epochs:
        raise ConfigurationError(f"need eta >= 2 and 1 <= min_epochs <= max_epochs, got eta={eta}, min_epochs={min_epochs}, max_epochs={max_epochs}")
    s_max = 0
    while min_epochs * eta ** (s_max + 1) <= max_epochs:  # integer arithmetic: no log rounding
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta**s // (s + 1))  # ceil of an exact rational
        rungs = []
        for i in range(s + 1):
            budget = int(np.clip(round(max_epochs * float(eta) ** (i - s)), min_epochs, max_epochs))
            rungs.append(Rung(size=max(1, n // eta**i), budget=budget))
        brackets.append(rungs)
    return brackets


@dataclass
class _BracketState:
    rungs: list[Rung]
    rung: int = 0
    members: list[int] = field(default_factory=list)


@register("hyperband")
class Hyperband(Method):
    """Hyperband with random rung-0 configs (no model, no transfer).

    Args:
        eta: halving rate (keep ``1/eta`` of a rung).
        min_epochs: the smallest rung budget allowed.
    """

    uses_transfer = False

    def __init__(self, eta: int = 3, min_epochs: int = 1) -> None:
        if int(eta) != eta or eta < 2 or int(min_epochs) != min_epochs or min_epochs < 1:
            raise ConfigurationError(f"eta must be an integer >= 2 and min_epochs an integer >= 1, got {eta}, {min_epochs}")
        self.eta = int(eta)
        self.min_epochs = int(min_epochs)

    def fit(self, problem: TransferProblem) -> None:
        self.brackets = hyperband_brackets(problem.n_epochs, self.eta, min(self.min_epochs, problem.n_epochs))
        self.bracket_index = 0
        self.history: list[tuple[int, int, list[int]]] = []  # (bracket number, rung, its configs)
        self._start_bracket()
        self.fit_offline(problem)

    def fit_offline(self, problem: TransferProblem) -> None:
        """Offline part of model-based variants; default: nothing."""

    def propose(self, pool: np.ndarray) -> int:
        """The next rung-0 config among ``pool`` (``(m,)`` config indices); here uniform."""
        return int(self.rng.choice(pool))

    # ------------------------------------------------------------------ schedule
    def _target(self, config: int, budget: int) -> int:
        return min(budget, int(self.problem.trial_length[config]))

    def value_at(self, config: int, budget: int) -> float:
        """The config's value at the rung's budget (its last epoch when its record ends earlier)."""
        curve = self.curves[config]
        return curve[min(budget, len(curve)) - 1] if curve else -np.inf

    def _start_bracket(self) -> None:
        self.state = _BracketState(self.brackets[self.bracket_index % len(self.brackets)])
        self.history.append((self.bracket_index, 0, self.state.members))  # filled as configs are drawn

    def _next_bracket(self) -> None:
        self.bracket_index += 1
        self._start_bracket()

    def _new_config_pool(self) -> np.ndarray:
        members = set(self.state.members)
        fresh = [i for i in range(self.problem.n_configs) if not self.curves[i] and self.problem.trial_length[i] > 0 and i not in members]
        if fresh:
            return np.asarray(fresh)
        return np.asarray([i for i in np.flatnonzero(self.continuable()) if i not in members], dtype=np.int64)

    def ask(self) -> int:
        # Each pass returns, adds a member, promotes or starts the next bracket; every bracket
        # adds at least one member unless nothing is left, so the bound is never reached normally.
        for _ in range(100 * (len(self.brackets) + 1) + self.problem.n_configs):
            state = self.state
            rung = state.rungs[state.rung]
            for config in state.members:
                if self.trained_epochs(config) < self._target(config, rung.budget):
                    return config
            if state.rung == 0 and len(state.members) < rung.size:
                pool = self._new_config_pool()
                if len(pool):
                    config = self.propose(pool)
                    state.members.append(config)
                    continue
            if state.members and state.rung + 1 < len(state.rungs):
                values = np.array([self.value_at(c, rung.budget) for c in state.members])
                keep = min(state.rungs[state.rung + 1].size, len(state.members))
                order = np.argsort(-values, kind="stable")[:keep]
                state.members = [state.members[i] for i in order]
                state.rung += 1
                self.history.append((self.bracket_index, state.rung, state.members))
                continue
            self._next_bracket()
        candidates = np.flatnonzero(self.continuable())
        if not len(candidates):
            raise RuntimeError("every config has been trained to its end")
        return int(self.rng.choice(candidates))


def _tpe_space(problem: TransferProblem) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of the space: categoricals by choice index, numerics on [0, 1]."""
    space = {}
    for hp in problem.space.hyperparameters:
        if hp.is_categorical:
            space[hp.name] = optuna.distributions.CategoricalDistribution(list(range(len(hp.choices))))
        else:
            space[hp.name] = optuna.distributions.FloatDistribution(0.0, 1.0)
    return space


def _config_params(problem: TransferProblem, index: int) -> dict[str, float | int]:
    """A candidate's TPE parameters: its active hyperparameters, read off its encoding."""
    slices = problem.space.column_slices()
    x = problem.X[index]
    params = {}
    for hp in problem.space.hyperparameters:
        if not problem.space.is_active(hp, problem.configs[index]):
            continue  # conditional: TPE (group=True) models active subsets separately
        part = x[slices[hp.name]]
        params[hp.name] = int(np.argmax(part)) if hp.is_categorical else float(part[0])
    return params


def _encode_params(problem: TransferProblem, params: dict[str, float | int]) -> np.ndarray:
    """``(d,)`` unit-cube encoding of TPE parameters (inactive ones get the space's placeholder)."""
    slices = problem.space.column_slices()
    row = np.zeros(problem.space.dim)
    for hp in problem.space.hyperparameters:
        sl = slices[hp.name]
        if hp.name not in params:  # inactive in a stored trial: decode/encode below resets it anyway
            row[sl] = INACTIVE_VALUE
        elif hp.is_categorical:
            row[sl.start + int(params[hp.name])] = 1.0
        else:
            row[sl.start] = float(params[hp.name])
    return problem.space.encode(problem.space.decode(row[None]))[0]


@register("bohb")
class BOHB(Hyperband):
    """BOHB-style: Hyperband whose rung-0 configs come from Optuna's TPE (multivariate).

    As in BOHB, a fraction ``random_fraction`` of proposals is uniform, and the model is fitted
    on the largest budget with at least ``min_points_in_model`` observations (the value at that
    epoch of every config trained that far). TPE samples a point of the space; the proposal is
    the nearest (Euclidean, unit-cube encoding) config in the pool.
    """

    uses_transfer = False

    def __init__(self, eta: int = 3, min_epochs: int = 1, random_fraction: float = 1 / 3, min_points_in_model: int = 10) -> None:
        super().__init__(eta=eta, min_epochs=min_epochs)
        if not 0 <= random_fraction <= 1 or min_points_in_model < 2:
            raise ConfigurationError("random_fraction must be in [0, 1] and min_points_in_model >= 2")
        self.random_fraction = float(random_fraction)
        self.min_points_in_model = int(min_points_in_model)

    def fit_offline(self, problem: TransferProblem) -> None:
        self.distributions = _tpe_space(problem)
        self.model_budgets: list[int | None] = []  # per proposal: budget of the TPE model, None if random

    def observations_at(self, budget: int) -> list[tuple[int, float]]:
        """(config, value at ``budget``) of every config trained at least that far."""
        return [(i, c[budget - 1]) for i, c in enumerate(self.curves) if len(c) >= budget]

    def propose(self, pool: np.ndarray) -> int:
        if self.rng.random() < self.random_fraction:
            self.model_budgets.append(None)
            return int(self.rng.choice(pool))
        budgets = sorted({r.budget for b in self.brackets for r in b}, reverse=True)
        for budget in budgets:
            data = self.observations_at(budget)
            if len(data) >= self.min_points_in_model:
                self.model_budgets.append(budget)
                return self._tpe_proposal(data, pool)
        self.model_budgets.append(None)
        return int(self.rng.choice(pool))

    def _tpe_proposal(self, data: list[tuple[int, float]], pool: np.ndarray) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate/group TPE are flagged experimental
            sampler = optuna.samplers.TPESampler(
                seed=int(self.rng.integers(2**31 - 1)), multivariate=True, group=True, n_startup_trials=self.min_points_in_model
            )
            study = optuna.create_study(direction="maximize", sampler=sampler)
            trials = []
            for index, value in data:
                params = _config_params(self.problem, index)
                trials.append(optuna.trial.create_trial(params=params, distributions={k: self.distributions[k] for k in params}, value=float(value)))
            study.add_trials(trials)
            trial = study.ask(self.distributions)
        target = _encode_params(self.problem, trial.params)
        distances = np.linalg.norm(self.problem.X[pool] - target, axis=1)
        return int(pool[np.argmin(distances)])

