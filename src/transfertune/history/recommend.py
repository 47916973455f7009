"""``recommend``: what to try next on a new task, given past tuning and the task's first observations.

The recommendation is a :class:`~transfertune.live.tuner.Tuner` (in memory) told the task's
observations (:meth:`Tuner.observe`) and then asked ``n`` times without telling, so the
configs are those the method would start in parallel; with no observation the first is the
Tuner's first ask. Each comes with the method's forecast at the final epoch (mean and posterior
standard deviation, AT2; a method without a posterior gets none, and says so), and the
predicted best is the config with the highest forecast mean there (lowest when minimising).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from transfertune.core.objectives import BudgetExhausted
from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.history.records import History, config_of
from transfertune.live.tuner import Tuner, pool_index_of


@dataclass
class Recommendations:
    """What :func:`recommend` found; ``lines()`` is what the CLI prints."""

    task: str
    method: str
    metric: str
    direction: str
    final_epoch: int
    suggestions: list[dict[str, Any]]
    predicted_best: dict[str, Any] | None
    recommended: dict[str, Any] | None
    observed_trials: int = 0
    left_out: int = 0
    note: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("task", "method", "metric", "direction", "final_epoch", "suggestions",
                                              "predicted_best", "recommended", "observed_trials", "left_out", "note", "notes")}

    def lines(self) -> list[str]:
        better = "higher" if self.direction == "maximize" else "lower"
        out = [f"{self.method} on {self.task}: {self.observed_trials} observed trial(s) told"
               + (f", {self.left_out} left out (configs outside the method's pool)" if self.left_out else "")
               + f"; {self.metric}, {better} is better; forecasts at epoch {self.final_epoch}"]
        for i, s in enumerate(self.suggestions, start=1):
            start = f"continue from epoch {s['start_epoch']}" if s["start_epoch"] else "new"
            forecast = f"{s['mean']:.4g} ± {s['std']:.2g}" if s["mean"] is not None else "no forecast"
            out.append(f"next {i} ({start}, config_id {s['config_id']}): {forecast}  {s['config']}")
        if self.predicted_best is not None:
            b = self.predicted_best
            out.append(f"predicted best (config_id {b['config_id']}, {b['told']} epoch(s) observed): {b['mean']:.4g} ± {b['std']:.2g}  {b['config']}")
        if self.note:
            out.append(self.note)
        out += self.notes
        return out


def observations_from_csv(path: str | Path, space: SearchSpace, metric: str, configs: Mapping[int, Mapping[str, Any]] | None = None) -> list[tuple[dict, list[float]]]:
    """``(config, values at epochs 1..E)`` per trial of a CSV with columns ``epoch``, ``metric`` and
    either the space's hyperparameters or ``config_id`` (a catalog id, given ``configs``);
    a ``trial`` column groups rows into trials (default: one trial per config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"observations file {path} does not exist")
    frame = pd.read_csv(path)
    missing = [c for c in ("epoch", metric) if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"{path}: column(s) {missing} missing (columns: {list(frame.columns)})")
    by_id = "config_id" in frame.columns and not any(hp.name in frame.columns for hp in space.hyperparameters)
    if by_id and configs is None:
        raise ConfigurationError(f"{path}: a config_id column needs the catalog's configs")
    names = [hp.name for hp in space.hyperparameters if hp.name in frame.columns]
    if not by_id and not names:
        raise ConfigurationError(f"{path}: no column names a hyperparameter of the space '{space.name}' (or give config_id)")
    keys = ["trial"] if "trial" in frame.columns else (["config_id"] if by_id else names)
    out = []
    for _, rows in frame.groupby(keys, sort=False, dropna=False):
        rows = rows.sort_values("epoch")
        first = rows.iloc[0]
        if by_id:
            if int(first["config_id"]) not in configs:
                raise ConfigurationError(f"{path}: config_id {int(first['config_id'])} is not in the catalog")
            config = dict(configs[int(first["config_id"])])
        else:
            config = config_of(space, {n: first[n] for n in names if pd.notna(first[n])})
            problems = space.problems(config)
            if problems:
                raise ConfigurationError(f"{path}: row {first.to_dict()} is outside the space: " + "; ".join(problems))
        if list(rows["epoch"]) != list(range(1, len(rows) + 1)):
            raise ConfigurationError(f"{path}: the epochs of config {config} are {list(rows['epoch'])}, expected 1..{len(rows)}")
        out.append((config, [float(v) for v in rows[metric]]))
    return out


def observations_from_history(history: History, space: SearchSpace) -> list[tuple[dict, list[float]]]:
    """``(config, values)`` of every trial of an imported :class:`History` (one task)."""
    if len(history.tasks) > 1:
        raise ConfigurationError(f"the new task's observations come from {len(history.tasks)} tasks ({history.tasks}); give one")
    return [(config_of(space, r.params), list(r.values)) for r in history.records]


def recommend(tuner: Tuner, observations: Sequence[tuple[Mapping[str, Any], Sequence[float]]] = (), n: int = 3) -> Recommendations:
    """Tell ``tuner`` the observations (each config once: its longest curve), then ask ``n`` times.

    ``observations`` are in the tuner's direction (as the user measured them)."""
    longest: dict[str, tuple[Mapping[str, Any], Sequence[float]]] = {}
    from transfertune.history.records import config_key

    for config, values in observations:
        key = config_key(config)
        if key not in longest or len(values) > len(longest[key][1]):
            longest[key] = (config, values)
    told, left_out = 0, 0
    for config, values in longest.values():
        if tuner.observe(config, list(values)) is None:
            left_out += 1
        else:
            told += 1
    forecast = tuner.forecast()
    ids = tuner.problem.history.config_ids if tuner.problem.history is not None else None
    suggestions = []
    for _ in range(int(n)):
        try:
            trial = tuner.ask()
        except BudgetExhausted:
            break
        if trial is None:
            break
        index = trial.pool_index if trial.pool_index is not None else pool_index_of(tuner.searcher, trial.config)
        row = forecast.iloc[index] if forecast is not None and index is not None else None
        suggestions.append({"config": dict(trial.config), "config_id": int(ids[index]) if ids is not None and index is not None else None,
                            "trial": trial.trial_id, "start_epoch": trial.start_epoch, "epoch": trial.epoch,
                            "mean": None if row is None else float(row["mean"]), "std": None if row is None else float(row["std"])})
    best = None
    if forecast is not None:
        row = forecast.loc[forecast["mean"].idxmax() if tuner.direction == "maximize" else forecast["mean"].idxmin()]
        best = {"config": dict(tuner.problem.history.configs[int(row["pool_index"])]), "config_id": int(row["config_id"]),
                "mean": float(row["mean"]), "std": float(row["std"]), "told": int(row["told"])}
    recommended = tuner.recommend()
    note = "" if forecast is not None else f"method {tuner.method_name!r} has no posterior over learning curves: no forecast mean or spread"
    return Recommendations(task=tuner.problem.task, method=tuner.method_name, metric=tuner.problem.metric, direction=tuner.direction,
                           final_epoch=tuner.problem.max_epochs, suggestions=suggestions, predicted_best=best,
                           recommended=None if recommended is None else dict(recommended), observed_trials=told,
                           left_out=left_out, note=note)
