"""Transfer for Optuna users: :class:`TransferSampler` and :class:`TransferPruner`.

::

    catalog = "data/03_primary/my_history"            # e.g. written by `transfertune import-history`
    sampler = TransferSampler(catalog, method="at2", budget=100)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=TransferPruner(sampler))
    study.optimize(objective, n_trials=30)              # objective: trial.report(value, epoch) each epoch

Any registered method runs behind the sampler through the project's trial protocol
(:func:`~transfertune.methods.registry.make_searcher`, :class:`~transfertune.methods.protocol.Searcher`):

- a new Optuna trial takes the config of the method's next new trial (``sample_relative`` over the
  catalog's space, :func:`optuna_distributions`); a parameter outside that space, or one the
  config leaves inactive, is drawn by the ``fallback`` sampler (``sample_independent``);
- each epoch the objective reports (``trial.report(value, step)``; the k-th reported step is
  epoch k) is told to the method, by the pruner as it comes or at the latest in ``after_trial``;
- :class:`TransferPruner` asks the method what it wants next once the epochs it asked for are
  told: if it continues this trial the trial runs on, else the trial is pruned and the method's
  choice starts as the next Optuna trial. A pool method like AT2 asks one epoch at a time, so
  this is its Max-Trial-GP-UCB choice between continuing and switching, on its forecasts;
- Optuna cannot resume a finished trial, so a trial that ends (complete, pruned, failed) is over
  for the method too: it keeps the epochs told and is never continued;
- a study that minimises: values are negated before the method sees them (the catalog is
  higher-is-better, see :mod:`transfertune.history.records`).

The method's budget is ``budget`` epochs; once it is spent (or while the method waits for a
trial in flight) new trials come from the ``fallback`` sampler, or with ``stop_when_spent`` the
study stops after the trial that spent it.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from transfertune.core.catalog import ObservationCatalog
from transfertune.core.objectives import BudgetExhausted
from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError
from transfertune.live.tuner import Recommendation, load_database, pool_index_of, posterior, search_problem
from transfertune.methods.protocol import FAILED, IDLE
from transfertune.methods.registry import make_searcher

log = logging.getLogger(__name__)


def optuna_distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The Optuna distribution of each hyperparameter of ``space`` (conditions aside)."""
    out: dict[str, BaseDistribution] = {}
    for hp in space.hyperparameters:
        if hp.is_categorical:
            out[hp.name] = CategoricalDistribution(list(hp.choices))
        elif hp.type == "integer":
            out[hp.name] = IntDistribution(int(hp.lower), int(hp.upper), log=hp.log)
        else:
            out[hp.name] = FloatDistribution(float(hp.lower), float(hp.upper), log=hp.log)
    return out


def suggest_config(trial: optuna.trial.BaseTrial, space: SearchSpace) -> dict[str, Any]:
    """Define-by-run: suggest each active hyperparameter of ``space`` (conditions followed) and
    return the config; the objective's side of :func:`optuna_distributions`."""
    config: dict[str, Any] = {}
    for hp in space.hyperparameters:
        if not space.is_active(hp, config):
            continue
        if hp.is_categorical:
            config[hp.name] = trial.suggest_categorical(hp.name, list(hp.choices))
        elif hp.type == "integer":
            config[hp.name] = trial.suggest_int(hp.name, int(hp.lower), int(hp.upper), log=hp.log)
        else:
            config[hp.name] = trial.suggest_float(hp.name, float(hp.lower), float(hp.upper), log=hp.log)
    return config


def catalog_metric(folder: Path) -> str | None:
    """The metric named in ``<folder>/catalog.json`` (written by the import), if any."""
    info = folder / "catalog.json"
    if info.is_file():
        try:
            return json.loads(info.read_text()).get("metric")
        except json.JSONDecodeError:
            return None
    return None


class TransferSampler(BaseSampler):
    """An Optuna sampler backed by a registered transfer method (see the module docstring).

    Args:
        catalog: past tuning: an :class:`ObservationCatalog` or a catalog folder (its
            ``space.yml``; the metric from its ``catalog.json`` unless ``metric`` is given).
        method: a registered method (``at2``, ``zero_shot``, ...); ``method_options`` its keywords.
        budget: epochs the study will spend (the method plans with it).
        seed: seed of the method and of the fallback sampler.
        max_epochs: the longest a trial trains (default: the catalog's epochs).
        train_tasks: catalog tasks to transfer from (default: all).
        task: name of the task being tuned (must not be a catalog task).
        fallback: sampler for parameters outside the catalog's space and for trials the method
            does not start (default ``RandomSampler(seed)``).
        stop_when_spent: stop the study (``study.stop()``) after the trial that spends the
            budget, instead of going on with the fallback sampler.
    """

    def __init__(
        self,
        catalog: ObservationCatalog | str | Path,
        method: str = "at2",
        *,
        method_options: Mapping[str, Any] | None = None,
        metric: str | None = None,
        space: SearchSpace | str | Path | None = None,
        budget: int = 100,
        seed: int = 0,
        max_epochs: int | None = None,
        train_tasks: Sequence[str] | None = None,
        task: str = "optuna",
        data_seed: int = 0,
        fallback: BaseSampler | None = None,
        stop_when_spent: bool = False,
    ) -> None:
        import torch

        if not isinstance(catalog, ObservationCatalog):
            metric = metric or catalog_metric(Path(catalog))
            if metric is None:
                raise ConfigurationError(f"catalog {catalog}: name its metric column (metric=...); it has no catalog.json that does")
            catalog = load_database(catalog, space, metric)
        self.catalog = catalog
        self.method_name = str(method)
        self.searcher = make_searcher(self.method_name, dict(method_options or {}))
        self.problem = search_problem(self.searcher, None, catalog, str(task), int(budget), int(seed), catalog.metric,
                                      max_epochs, list(train_tasks) if train_tasks else None, int(data_seed))
        self.distributions = optuna_distributions(catalog.space)
        self.fallback = fallback or RandomSampler(seed=seed)
        self.stop_when_spent = bool(stop_when_spent)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.problem.seed)
            self.searcher.setup(self.problem)
            self._rng_state = torch.get_rng_state()
        self._pending: deque[Trial] = deque()  # asked by the pruner, for the next new Optuna trial
        self._of_trial: dict[int, int] = {}  # Optuna trial number -> the method's trial id
        self._sign: float | None = None
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self.distributions)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        self._direction(study)
        asked = self._pending.popleft() if self._pending else self._ask()
        if asked is None:
            return {}
        self._of_trial[trial.number] = asked.trial_id
        trial_params = {k: v for k, v in asked.config.items() if k in search_space}
        return {k: (int(v) if isinstance(search_space[k], IntDistribution) else v) for k, v in trial_params.items()}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if trial.number in self._of_trial:
            why = "is not in the catalog's space" if param_name not in self.distributions else "is inactive in the method's config"
            self._warn_once(param_name, f"TransferSampler: parameter {param_name!r} {why}; the fallback sampler draws it")
        return self.fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.fallback.after_trial(study, trial, state, values)
        trial_id = self._of_trial.pop(trial.number, None)
        if trial_id is None:
            return
        self._direction(study)
        told = self._tell_reported(trial, trial_id)
        if state == TrialState.COMPLETE and not trial.intermediate_values and values and told == 0:
            self._warn_once("no-report", "TransferSampler: a trial completed without trial.report(value, step); its value is told as epoch 1")
            self._tell(trial_id, 1, float(values[0]))
        self._close(trial_id, state.name.lower())
        if self.stop_when_spent and self.searcher.epochs_told >= self.problem.budget:
            study.stop()

    def reseed_rng(self) -> None:
        self.fallback.reseed_rng()

    # ------------------------------------------------------------------ forecasts
    def forecast(self) -> pd.DataFrame | None:
        """The method's forecast at the final epoch per catalog config (``config_id, mean, std,
        told``, in the study's direction), None for a method without a posterior."""
        found = self._call(posterior, self.searcher)
        if found is None:
            return None
        mean, std = found
        e = self.problem.max_epochs - 1
        told = np.zeros(len(mean), dtype=np.int64)
        for state in self.searcher.trials.values():
            if state.pool_index is not None:
                told[state.pool_index] = state.told
        return pd.DataFrame({"config_id": self.problem.history.config_ids, "mean": (self._sign or 1.0) * mean[:, e],
                             "std": std[:, e], "told": told})

    def recommend(self) -> Recommendation | None:
        """The config the method would pick now (a dict), with its forecast at the final epoch
        (``.mean``, ``.std``, in the study's direction; None and a ``.note`` without a posterior)."""
        config = self._call(self.searcher.recommend)
        if config is None:
            return None
        table = self.forecast()
        index = pool_index_of(self.searcher, config)
        if table is None or index is None:
            return Recommendation(config, note=f"method {self.method_name!r} has no posterior over learning curves: no forecast")
        row = table.iloc[index]
        return Recommendation(config, mean=float(row["mean"]), std=float(row["std"]), epoch=self.problem.max_epochs)

    # ------------------------------------------------------------------ the pruner's side
    def should_prune(self, trial: FrozenTrial) -> bool | None:
        """Tell the trial's new epochs; True when the method wants another config next (that ask
        is kept for the next new trial), None for a trial the method did not start."""
        trial_id = self._of_trial.get(trial.number)
        if trial_id is None:
            return None
        self._tell_reported(trial, trial_id)
        state = self.searcher.trials[trial_id]
        if state.status != IDLE or state.told >= self.problem.max_epochs:
            return False  # epochs asked still to come, or the trial is complete
        following = self._ask()
        if following is None:
            return False
        if following.trial_id == trial_id:
            return False
        self._pending.append(following)
        return True

    # ------------------------------------------------------------------ internals
    def _direction(self, study: optuna.Study) -> None:
        if self._sign is None:
            if len(study.directions) != 1:
                raise ConfigurationError("TransferSampler tunes single-objective studies")
            self._sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0

    def _ask(self) -> Trial | None:
        try:
            return self._call(self.searcher.ask)
        except BudgetExhausted:
            self._warn_once("budget", f"TransferSampler: the budget of {self.problem.budget} epochs is spent; new trials come from the fallback sampler")
            return None

    def _tell_reported(self, trial: FrozenTrial, trial_id: int) -> int:
        """Tell the epochs reported beyond those told; returns how many were told in all."""
        state = self.searcher.trials[trial_id]
        if state.status == FAILED:
            return state.told
        reported = [v for _, v in sorted(trial.intermediate_values.items())]
        for epoch in range(state.told + 1, min(len(reported), self.problem.max_epochs) + 1):
            value = float(reported[epoch - 1])
            if not math.isfinite(value):
                self._call(self.searcher.fail, trial_id, f"non-finite value at epoch {epoch}")
                break
            if not self._tell(trial_id, epoch, value):
                break
        return state.told

    def _tell(self, trial_id: int, epoch: int, value: float) -> bool:
        state = self.searcher.trials[trial_id]
        if state.status == IDLE:  # the objective trains on past the epochs asked: extend the trial
            try:
                self._call(self.searcher.continue_trial, trial_id, epoch)
            except BudgetExhausted:
                return False
        self._call(self.searcher.tell, trial_id, epoch, (self._sign or 1.0) * value)
        return True

    def _close(self, trial_id: int, reason: str) -> None:
        """The Optuna trial ended: the method never continues it."""
        state = self.searcher.trials[trial_id]
        if state.status == FAILED:
            return
        if state.in_flight:
            self._call(self.searcher.fail, trial_id, reason)
        else:  # all its asked epochs told: fail() would refuse a finished trial; the same effect
            state.status, state.reason = FAILED, reason
            self._call(self.searcher.observe_failure, state, reason)

    def _call(self, function, *args):
        """Run a method call on the method's own torch generator state (as the Tuner does)."""
        from transfertune.core.device import call_on_own_generator

        return call_on_own_generator(self, function, *args)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)


class TransferPruner(optuna.pruners.BasePruner):
    """Prunes a trial when the :class:`TransferSampler`'s method would rather train another
    config next (its forecasts decide); trials the method did not start go to ``fallback``
    (default: never pruned)."""

    def __init__(self, sampler: TransferSampler, fallback: optuna.pruners.BasePruner | None = None) -> None:
        self.sampler = sampler
        self.fallback = fallback or optuna.pruners.NopPruner()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        decision = self.sampler.should_prune(trial)
        return self.fallback.prune(study, trial) if decision is None else decision
