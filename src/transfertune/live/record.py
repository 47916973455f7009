"""Today's tuning is tomorrow's transfer data: live trials appended to an observation catalog.

The target folder gets the HyperRec layout (see :mod:`transfertune.core.catalog`). When it is
not a catalog yet, it starts as a copy of ``base`` (the database the run transferred from), so it
loads with its pairs and training tasks. Each live trial becomes the rows of one
``(task, config_id, seed)``: a config already in the catalog keeps its id, a new one gets the
next free id. When several trials (of several methods) trained the same config with the same
seed, the longest one is kept (their common epochs are the same numbers on CPU). A diverged
trial keeps its good epochs and is listed in ``failed_trials.parquet``. The task gets a pair
``{train: every other task, test: task}`` if it is not a test task yet. Every file is replaced
atomically (:func:`transfertune.training.store.write_catalog`).

Trials shorter than the catalog's epochs leave NaN cells in its grids: methods that need
complete grids (AT2's exact inference) fall back to the ones that do not (AT2's SVGP).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from transfertune.core.catalog import CONFIGS_FILE, KEY_COLUMNS, OBSERVATIONS_FILE, PAIRS_FILE
from transfertune.errors import ConfigurationError
from transfertune.training.store import write_catalog


@dataclass
class RecordedTrial:
    """One live trial to record: its config, its per-epoch records and whether it diverged."""

    config: Mapping[str, Any]
    records: Sequence[Mapping[str, Any]]
    failed: bool = False
    reason: str = ""


def record_trials(
    folder: str | Path,
    task: str,
    trials: Sequence[RecordedTrial],
    seed: int,
    space_names: Sequence[str],
    space_file: str | Path,
    base: str | Path | None = None,
    task_meta: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Append ``trials`` of ``task`` to the catalog in ``folder`` (see the module docstring).

    Returns counts: ``trials`` recorded, ``new_configs``, ``rows`` of the task.
    """
    folder = Path(folder)
    source = folder if (folder / OBSERVATIONS_FILE).is_file() else (Path(base) if base is not None else None)
    if source is not None and not (source / OBSERVATIONS_FILE).is_file():
        raise ConfigurationError(f"{source} is not a catalog folder (no {OBSERVATIONS_FILE})")
    observations = pd.read_parquet(source / OBSERVATIONS_FILE) if source else pd.DataFrame(columns=[*KEY_COLUMNS, "padded"])
    failures = pd.read_parquet(source / "failed_trials.parquet") if source and (source / "failed_trials.parquet").is_file() else pd.DataFrame(
        columns=["task", "config_id", "seed", "last_good_epoch", "failed_epoch", "reason"]
    )
    configs = [json.loads(line) for line in (source / CONFIGS_FILE).read_text().splitlines() if line.strip()] if source else []
    pairs = json.loads((source / PAIRS_FILE).read_text())["pairs"] if source else []
    tasks = json.loads((source / "tasks.json").read_text()) if source and (source / "tasks.json").is_file() else []
    info = json.loads((source / "catalog.json").read_text()) if source and (source / "catalog.json").is_file() else {}

    ids = {_key(c, space_names): int(c["config_id"]) for c in configs}
    next_id = max(ids.values(), default=-1) + 1
    longest: dict[int, RecordedTrial] = {}
    new_configs = 0
    for trial in trials:
        if not trial.records:
            continue
        key = _key(trial.config, space_names)
        if key not in ids:
            ids[key] = next_id
            configs.append({"config_id": next_id, **{n: trial.config[n] for n in space_names if n in trial.config}})
            next_id += 1
            new_configs += 1
        config_id = ids[key]
        if config_id not in longest or len(trial.records) > len(longest[config_id].records):
            longest[config_id] = trial
    rows = []
    new_failures = []
    for config_id, trial in longest.items():
        for record in trial.records:
            rows.append({"task": task, "config_id": config_id, "seed": int(seed), **dict(record), "padded": False})
        if trial.failed:
            last = len(trial.records)
            new_failures.append({"task": task, "config_id": config_id, "seed": int(seed), "last_good_epoch": last, "failed_epoch": last + 1, "reason": trial.reason})
    new = pd.DataFrame(rows)
    replaced = observations["task"].astype(str).eq(task) & observations["config_id"].isin(list(longest)) & observations["seed"].eq(int(seed))
    observations = pd.concat([observations[~replaced], new], ignore_index=True)
    observations = observations.astype({"config_id": "int64", "seed": "int64", "epoch": "int64", "padded": "bool"})
    observations = observations.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
    stale = failures["task"].astype(str).eq(task) & failures["config_id"].isin(list(longest)) & failures["seed"].eq(int(seed))
    failures = pd.concat([failures[~stale], pd.DataFrame(new_failures, columns=failures.columns)], ignore_index=True)
    if task not in {p["test"] for p in pairs}:
        others = sorted(set(observations["task"].astype(str)) - {task})
        if others:
            pairs.append({"train": others, "test": task})
    tasks = [t for t in tasks if t.get("task") != task] + [{"task": task, **dict(task_meta or {})}]
    info = {**info, **dict(metadata or {}), "live_tasks": sorted(set(info.get("live_tasks", [])) | {task})}
    write_catalog(folder, observations, failures, sorted(configs, key=lambda c: c["config_id"]), pairs, space_file, tasks, info)
    return {"trials": len(longest), "new_configs": new_configs, "rows": len(new)}


def _key(config: Mapping[str, Any], names: Sequence[str]) -> tuple:
    return tuple((n, config[n]) for n in names if n in config)
