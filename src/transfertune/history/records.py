"""Past tuning as trial records, and the observation catalog written from them.

A source reader (:mod:`~transfertune.history.optuna_source`, :mod:`~transfertune.history.mlflow_source`)
turns a tool's history into a :class:`History`: one :class:`TrialRecord` per trial kept (its
task, its params, its value at epochs ``1..E``) and what the tool says about each parameter's
distribution. :func:`write_catalog` writes it in the project's layout (``observations.parquet``,
``configs.jsonl``, ``train_test_pairs.json``, ``space.yml``, ``catalog.json``) and loads it back
with :meth:`ObservationCatalog.load`, so an imported history is validated like any database.

Orientation: a catalog's metric is higher-is-better (every method maximises it). A history
that minimised its objective is stored negated (``value = -objective``) under the same column
name, and ``catalog.json`` says so (``"direction": "minimize", "stored": "negated"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from transfertune.core.catalog import CONFIGS_FILE, OBSERVATIONS_FILE, PAIRS_FILE, ObservationCatalog
from transfertune.core.spaces import SearchSpace, flatten_record
from transfertune.errors import ConfigurationError

SPACE_FILE = "space.yml"
INFO_FILE = "catalog.json"
DIRECTIONS = ("maximize", "minimize")


@dataclass
class TrialRecord:
    """One trial of past tuning.

    Attributes:
        task: the task it tuned (an Optuna study, an MLflow experiment or tag value).
        params: its hyperparameters (name -> value; only those it set).
        values: its objective at epochs ``1..E`` in the source's own orientation.
        source: where it came from, for messages (``study 'a' trial 12``).
    """

    task: str
    params: dict[str, Any]
    values: list[float]
    source: str


@dataclass
class History:
    """Trials read from a tool, before they become a catalog.

    Attributes:
        records: the trials kept.
        distributions: name -> ``{"type": float|integer|categorical, "lower", "upper", "log"}``
            or ``{"type": "categorical", "choices": [...]}``, merged over every trial.
        direction: ``maximize`` or ``minimize`` (of every task: mixed directions are refused).
        source: a description of the source (storage URL, tracking URI).
        skipped: why trials were left out -> how many.
        notes: other things the reader did that the user should know (one line each).
    """

    records: list[TrialRecord]
    distributions: dict[str, dict[str, Any]]
    direction: str
    source: str
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.records))

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


@dataclass
class ImportReport:
    """What :func:`write_catalog` wrote."""

    folder: Path
    metric: str
    direction: str
    tasks: int
    trials: int
    configs: int
    recurring_configs: int
    rows: int
    max_epoch: int
    skipped: dict[str, int]
    notes: list[str]
    catalog: ObservationCatalog | None = None

    def lines(self) -> list[str]:
        out = [
            f"wrote {self.folder}: {self.tasks} task(s), {self.trials} trial(s), {self.configs} config(s) "
            f"({self.recurring_configs} in more than one task), {self.rows} rows, epochs 1..{self.max_epoch}",
            f"metric column {self.metric!r} is higher-is-better"
            + (" (the source minimised: values are stored negated)" if self.direction == "minimize" else ""),
        ]
        out += [f"left out {n} trial(s): {reason}" for reason, n in self.skipped.items()]
        out += self.notes
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder), "metric": self.metric, "direction": self.direction, "tasks": self.tasks,
            "trials": self.trials, "configs": self.configs, "recurring_configs": self.recurring_configs,
            "rows": self.rows, "max_epoch": self.max_epoch, "skipped": dict(self.skipped), "notes": list(self.notes),
        }


# ---------------------------------------------------------------------- distributions
def merge_distribution(known: dict[str, Any] | None, new: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """Two descriptions of one parameter as one: numeric ranges widened, choices united (first
    seen first); a type or log-scale that differs is a one-line ConfigurationError."""
    if known is None:
        return dict(new, choices=list(new["choices"])) if new["type"] == "categorical" else dict(new)
    if known["type"] != new["type"]:
        raise ConfigurationError(f"parameter {name!r} is {known['type']} in one trial and {new['type']} in {where}; import them separately")
    if new["type"] == "categorical":
        merged = list(known["choices"]) + [c for c in new["choices"] if c not in known["choices"]]
        return {"type": "categorical", "choices": merged}
    if bool(known.get("log")) != bool(new.get("log")):
        raise ConfigurationError(f"parameter {name!r} is on a log scale in one trial and not in {where}; import them separately")
    return {"type": new["type"], "lower": min(known["lower"], new["lower"]), "upper": max(known["upper"], new["upper"]), "log": bool(new.get("log"))}


def infer_space(history: History, name: str = "imported") -> SearchSpace:
    """The search space of the history: its parameters' distributions, and for a parameter that
    only some trials set, the condition that decides when (a categorical parameter whose value
    is in a set exactly in the trials that set it). Raises when no such parameter exists."""
    records = history.records
    names = list(history.distributions)
    present = {p: np.array([p in r.params for r in records]) for p in names}
    parents: dict[str, tuple[str, list[Any]]] = {}
    for p in names:
        if present[p].all():
            continue
        found = None
        for q in names:
            spec = history.distributions[q]
            if q == p or spec["type"] != "categorical" or not present[q][present[p]].all():
                continue
            values = [r.params[q] for r, has in zip(records, present[p]) if has]
            chosen = [c for c in spec["choices"] if c in values]
            decides = all((r.params[q] in chosen) == (p in r.params) for r, has_q in zip(records, present[q]) if has_q)
            if decides and (found is None or present[q].all()):
                found = (q, chosen)
        if found is None:
            raise ConfigurationError(
                f"parameter {p!r} is set in only {int(present[p].sum())} of {len(records)} trials and no categorical "
                "parameter decides when; give a space YAML (space=...) that states its condition"
            )
        parents[p] = found
    ordered: list[str] = []

    def place(p: str, chain: tuple[str, ...] = ()) -> None:
        if p in ordered:
            return
        if p in chain:
            raise ConfigurationError(f"parameters {list(chain)} decide each other's presence in a cycle; give a space YAML")
        if p in parents:
            place(parents[p][0], (*chain, p))
        ordered.append(p)

    for p in names:
        place(p)
    hyperparameters = []
    for p in ordered:
        spec = dict(history.distributions[p])
        if spec["type"] != "categorical" and not spec["lower"] < spec["upper"]:
            # a parameter that never changed: one choice, so the space still accepts it
            spec = {"type": "categorical", "choices": [_plain(spec["lower"] if spec["type"] == "float" else int(spec["lower"]))]}
        entry: dict[str, Any] = {"name": p, **{k: _plain(v) for k, v in spec.items() if k != "choices"}}
        if spec["type"] == "categorical":
            entry["choices"] = [_plain(c) for c in spec["choices"]]
        if p in parents:
            entry["condition"] = {"parent": parents[p][0], "values": [_plain(v) for v in parents[p][1]]}
        hyperparameters.append(entry)
    return SearchSpace.from_dict({"name": name, "hyperparameters": hyperparameters}, source=f"the space inferred from {history.source}")


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The YAML layout of ``space`` (see :mod:`transfertune.core.spaces`)."""
    out = []
    for hp in space.hyperparameters:
        entry: dict[str, Any] = {"name": hp.name, "type": hp.type}
        if hp.key != hp.name:
            entry["key"] = hp.key
        if hp.is_categorical:
            entry["choices"] = [_plain(c) for c in hp.choices]
        else:
            lower, upper = (int(hp.lower), int(hp.upper)) if hp.type == "integer" else (float(hp.lower), float(hp.upper))
            entry.update(lower=lower, upper=upper, log=bool(hp.log))
        if hp.parent is not None:
            entry["condition"] = {"parent": hp.parent, "values": [_plain(v) for v in hp.parent_values]}
        out.append(entry)
    return {"name": space.name, "hyperparameters": out}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------- writing
def config_key(config: Mapping[str, Any]) -> str:
    """Identity of a config across tasks: its values, floats to 12 significant digits (a value
    that went through a database and back is the same config)."""
    def norm(v: Any) -> Any:
        v = _plain(v)
        if isinstance(v, float) and math.isfinite(v):
            return float(f"{v:.12g}")
        return v

    return json.dumps({k: norm(v) for k, v in sorted(config.items())}, sort_keys=True, default=str)


def write_catalog(
    history: History,
    folder: str | Path,
    metric: str = "value",
    space: SearchSpace | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Write ``history`` as an observation catalog in ``folder`` and load it back (validated).

    Args:
        history: the trials (see :class:`History`).
        folder: created; one that already holds a catalog needs ``overwrite``.
        metric: the metric column's name (higher is better; a minimised source is negated).
        space: the search space; default: inferred (:func:`infer_space`).

    Config ids follow first appearance; a config that recurs (same values, :func:`config_key`)
    has one id in every task. A config tried several times on one task gets seeds 0, 1, ... in
    the order the trials came.
    """
    folder = Path(folder)
    if not history.records:
        raise ConfigurationError(f"nothing to import from {history.source}: no trial with an observed value ("
                                 + (", ".join(f"{n} {why}" for why, n in history.skipped.items()) or "no trials") + ")")
    if history.direction not in DIRECTIONS:
        raise ConfigurationError(f"direction must be one of {DIRECTIONS}, got {history.direction!r}")
    if (folder / OBSERVATIONS_FILE).exists() and not overwrite:
        raise ConfigurationError(f"{folder} already holds a catalog; choose another folder or overwrite it (overwrite=True, --overwrite)")
    space = space or infer_space(history, name=folder.name or "imported")
    sign = -1.0 if history.direction == "minimize" else 1.0
    ids: dict[str, int] = {}
    configs: list[dict[str, Any]] = []
    tasks_of: dict[int, set[str]] = {}
    repeats: dict[tuple[str, int], int] = {}
    task_col, id_col, seed_col, epoch_col, value_col = [], [], [], [], []
    for record in history.records:
        config = config_of(space, record.params)
        problems = space.problems(config)
        if problems:
            raise ConfigurationError(f"{record.source} is outside the space '{space.name}': " + "; ".join(problems))
        key = config_key(config)
        if key not in ids:
            ids[key] = len(configs)
            configs.append({k: _plain(v) for k, v in config.items()})
        config_id = ids[key]
        tasks_of.setdefault(config_id, set()).add(record.task)
        seed = repeats.get((record.task, config_id), 0)
        repeats[(record.task, config_id)] = seed + 1
        n = len(record.values)
        task_col += [record.task] * n
        id_col += [config_id] * n
        seed_col += [seed] * n
        epoch_col += list(range(1, n + 1))
        value_col += [sign * float(v) for v in record.values]
    observations = pd.DataFrame({
        "task": pd.Series(task_col, dtype=str), "config_id": np.asarray(id_col, dtype=np.int64),
        "seed": np.asarray(seed_col, dtype=np.int64), "epoch": np.asarray(epoch_col, dtype=np.int64),
        metric: np.asarray(value_col, dtype=np.float64),
    })
    tasks = history.tasks
    pairs = [{"train": [t for t in tasks if t != test], "test": test} for test in tasks]
    folder.mkdir(parents=True, exist_ok=True)
    observations.to_parquet(folder / OBSERVATIONS_FILE, index=False)
    with (folder / CONFIGS_FILE).open("w") as handle:
        for config_id, config in enumerate(configs):
            handle.write(json.dumps(_raw_record(space, config_id, config), default=_plain) + "\n")
    (folder / PAIRS_FILE).write_text(json.dumps({"pairs": pairs}, indent=1) + "\n")
    (folder / SPACE_FILE).write_text(
        f"# written by transfertune's history import from {history.source}\n" + yaml.safe_dump(space_to_dict(space), sort_keys=False)
    )
    report = ImportReport(
        folder=folder, metric=metric, direction=history.direction, tasks=len(tasks), trials=len(history.records),
        configs=len(configs), recurring_configs=sum(len(t) > 1 for t in tasks_of.values()), rows=len(observations),
        max_epoch=int(observations["epoch"].max()), skipped=dict(history.skipped), notes=list(history.notes),
    )
    info = {"source": history.source, **report.as_dict(), "stored": "negated" if sign < 0 else "as recorded",
            "orientation": "higher is better"}
    info.pop("folder")
    (folder / INFO_FILE).write_text(json.dumps(info, indent=1, default=str) + "\n")
    report.catalog = ObservationCatalog.load(folder, folder / SPACE_FILE, metric)
    return report


def config_of(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """The config of ``params`` in ``space``: each active hyperparameter by its name, else by its
    ``key`` (a nested record such as configs.jsonl's); integers as ``int``."""
    flat = flatten_record(params)
    config: dict[str, Any] = {}
    for hp in space.hyperparameters:
        if not space.is_active(hp, config):
            continue
        value = params.get(hp.name, flat.get(hp.key))
        if value is None and hp.name not in params and hp.key not in flat:
            continue
        if hp.type == "integer" and isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        config[hp.name] = _plain(value)
    return config


def _raw_record(space: SearchSpace, config_id: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """The configs.jsonl record: values at each hyperparameter's ``key`` (dotted paths nest)."""
    record: dict[str, Any] = {"config_id": config_id}
    for hp in space.hyperparameters:
        if hp.name not in config:
            continue
        node = record
        parts = hp.key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _plain(config[hp.name])
    return record


def epochs_from_steps(steps_of: Sequence[Mapping[int, float]]) -> tuple[list[list[float]], int]:
    """Per trial, its values at epochs ``1..E``: epoch k is the k-th smallest step reported by
    any trial of the task (so steps 0.., 1.. or every 10 all give epochs 1, 2, ...). A trial
    stops at its first missing or non-finite epoch; returns the lists and how many trials were
    cut that way."""
    all_steps = sorted({int(s) for steps in steps_of for s in steps})
    out, cut = [], 0
    for steps in steps_of:
        values = []
        for s in all_steps:
            v = steps.get(s)
            if v is None or not math.isfinite(v):
                break
            values.append(float(v))
        if len(values) < len(steps):
            cut += 1
        out.append(values)
    return out, cut
