"""A tuning database replayed through Optuna: each task as an Optuna study on disk (what an
Optuna user's history looks like), and a task as an Optuna objective that answers from its
recorded curves (how samplers are compared on a benchmark without training anything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna

from transfertune.core.catalog import ObservationCatalog
from transfertune.history.sampler import optuna_distributions, suggest_config


def catalog_to_optuna(catalog: ObservationCatalog, storage: str, tasks: Sequence[str] | None = None, seed: int = 0) -> list[str]:
    """Write each task of ``catalog`` as an Optuna study (named by the task) in ``storage``: one
    COMPLETE trial per config with every recorded epoch as an intermediate value (step = epoch)
    and the last as its value; direction maximize. Returns the study names."""
    distributions = optuna_distributions(catalog.space)
    names = []
    for task in tasks or catalog.tasks:
        grid = catalog.grid(task, seed)
        study = optuna.create_study(study_name=task, storage=storage, direction="maximize", load_if_exists=False)
        trials = []
        for row, config_id in enumerate(catalog.config_ids):
            curve = grid[row]
            epochs = np.flatnonzero(np.isfinite(curve))
            if not len(epochs):
                continue
            config = catalog.configs[int(config_id)]
            trials.append(optuna.trial.create_trial(
                params=dict(config), distributions={k: distributions[k] for k in config},
                value=float(curve[epochs[-1]]), intermediate_values={int(e) + 1: float(curve[e]) for e in epochs},
            ))
        study.add_trials(trials)
        names.append(task)
    return names


class BudgetSpent(Exception):
    """The replay's epoch budget is spent (raised out of the objective to end the study)."""


@dataclass
class ReplayObjective:
    """An Optuna objective answering from ``task``'s recorded curves.

    The trial suggests a config of the catalog's space (:func:`suggest_config`); a config off the
    recorded ones is answered by the nearest recorded config (unit-cube distance of the
    encodings, the usual tabular-benchmark lookup). Each epoch is reported (step = epoch) and
    costs one epoch of ``budget``; ``trial.should_prune()`` is asked after each, so the study's
    pruner acts. ``values`` records every epoch spent, in order.
    """

    catalog: ObservationCatalog
    task: str
    budget: int
    seed: int = 0
    values: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.grid = self.catalog.grid(self.task, self.seed)
        self.X = self.catalog.encoded_configs

    def lookup(self, config: dict) -> int:
        x = self.catalog.space.encode([config])[0]
        return int(np.argmin(((self.X - x) ** 2).sum(axis=1)))

    def __call__(self, trial: optuna.trial.Trial) -> float:
        if len(self.values) >= self.budget:
            trial.study.stop()
            raise BudgetSpent()
        row = self.lookup(suggest_config(trial, self.catalog.space))
        value = float("nan")
        for epoch in range(1, self.grid.shape[1] + 1):
            value = float(self.grid[row, epoch - 1])
            self.values.append(value)
            trial.report(value, epoch)
            if len(self.values) >= self.budget:
                trial.study.stop()
                break
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    def regret(self, qs: Sequence[int]) -> list[float]:
        """Best-so-far regret after each of ``qs`` epochs: best recorded value of the task minus
        the best value seen (the last value seen when fewer epochs were spent)."""
        best = np.maximum.accumulate(np.asarray(self.values))
        top = float(np.nanmax(self.grid))
        return [top - float(best[min(q, len(best)) - 1]) for q in qs]
