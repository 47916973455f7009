"""Build an observation catalog: train configs x tasks x seeds, then write the catalog folder.

This is the whole train stage as one library call (the Kedro pipeline only wires parameters
and reporting around it)::

    report, observations, failures = build_catalog(tasks, configs, [0], settings, "out/", "space.yml")

The trial store defaults to ``<out_dir>/_trials``; rerunning with the same arguments trains
only the trials whose files are missing, then rewrites the consolidated files from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from transfertune.errors import ConfigurationError
from transfertune.training.pairs import make_pairs
from transfertune.training.runner import RunReport, TrainSettings, make_jobs, run_trials
from transfertune.training.sampling import configs_to_records
from transfertune.training.store import TrialStore, assemble_observations, write_catalog
from transfertune.training.tasks import describe_tasks
from transfertune.training.trainer import TaskData

STORE_DIRNAME = "_trials"


def build_catalog(
    tasks: Sequence[TaskData],
    configs: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    settings: TrainSettings,
    out_dir: str | Path,
    space_file: str | Path,
    store_dir: str | Path | None = None,
    workers: int = 1,
    scheduler_address: str | None = None,
    threads_per_worker: int = 1,
    pairs: Mapping[str, Any] | None = None,
    failed_policy: str = "pad",
    progress: bool = True,
    on_trial_done: Callable[[dict[str, Any], RunReport], None] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[RunReport, pd.DataFrame, pd.DataFrame]:
    """Train every (config, task, seed) trial not stored yet and write the catalog folder.

    Args:
        tasks: the tasks (one per subset).
        configs: configs of the model's space; ``configs[i]`` gets ``config_id = i``.
        seeds: trial seeds (repetitions).
        settings: model, epochs and execution settings.
        out_dir: the catalog folder.
        space_file: the space YAML, copied to ``out_dir/space.yml``.
        store_dir: per-trial files (default ``out_dir/_trials``).
        workers, scheduler_address, threads_per_worker: see :func:`run_trials`.
        pairs: keyword arguments of :func:`make_pairs` (``method``, ``n_train``, ``n_pairs``, ``seed``).
        failed_policy: ``pad`` or ``drop`` (see :func:`assemble_observations`).
        progress: tqdm progress bar.
        on_trial_done: per-trial callback (see :func:`run_trials`).
        metadata: extra run description for ``catalog.json``.

    Returns:
        ``(report, observations, failures)``. The catalog is written even when some trials
        raised errors (they are in ``report.errors`` and will be retried by a rerun).
    """
    space_file = Path(space_file)
    if not space_file.is_file():
        raise ConfigurationError(f"space file {space_file} does not exist")
    out = Path(out_dir)
    store = TrialStore(Path(store_dir) if store_dir else out / STORE_DIRNAME)
    jobs = make_jobs(tasks, configs, seeds, settings)
    data = {t.name: t for t in tasks}
    report = run_trials(
        jobs, data, settings, store, workers=workers, scheduler_address=scheduler_address,
        threads_per_worker=threads_per_worker, progress=progress, on_trial_done=on_trial_done,
    )
    frames, metas = store.collect(j.key for j in jobs)
    observations, failures = assemble_observations(frames, metas, settings.epochs, failed_policy)
    task_names = sorted(observations["task"].unique()) if len(observations) else []
    pair_list = make_pairs(task_names, **dict(pairs or {})) if len(task_names) >= 2 else []
    info = {
        "model": settings.model,
        "epochs": int(settings.epochs),
        "fixed": dict(settings.fixed),
        "options": dict(settings.options),
        "seeds": [int(s) for s in seeds],
        "n_configs": len(configs),
        "tasks": [t.name for t in tasks],
        "failed_policy": failed_policy,
        "trials_expected": len(jobs),
        "trials_stored": len(frames),
        "trials_failed": int(len(failures)),
        "trials_with_errors": len(report.errors),
        "store": str(store.root),
        **dict(metadata or {}),
    }
    write_catalog(out, observations, failures, configs_to_records(configs), pair_list, space_file, describe_tasks(tasks), info)
    return report, observations, failures


def observations_from_database(database: str | Path, task_names: Sequence[str], configs: Sequence[Mapping[str, Any]],
                               seeds: Sequence[int], epochs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials a tuning database already holds, instead of training them again.

    ``database`` is a folder of the catalog layout (e.g. ``data/01_raw/mnist1d_scale``, written
    by :func:`build_catalog` or ``benchmarks/family_database.py``). Returns ``(observations,
    failures)`` restricted to ``task_names`` x ``seeds``, with ``config_id = i`` for
    ``configs[i]``, as :func:`build_catalog` would write them. Raises one
    :class:`ConfigurationError` line when the database lacks a task, a seed or an epoch, or when
    its configs are not ``configs`` (values compared to 1e-9 relative): then the trials must be
    trained.
    """
    import json

    import numpy as np

    folder = Path(database)
    if not (folder / "observations.parquet").is_file():
        raise ConfigurationError(f"database {folder}: no observations.parquet there")
    # by config_id, as the observations' rows refer to configs (not by the file's line order)
    lines = (folder / "configs.jsonl").read_text().splitlines()
    stored = {int(r["config_id"]): r for r in (json.loads(line) for line in lines if line.strip())}
    if not set(range(len(configs))) <= set(stored):
        raise ConfigurationError(f"database {folder} holds {len(stored)} configs, {len(configs)} are asked")
    for i, config in enumerate(configs):
        row = stored[i]
        for name, value in config.items():
            if name not in row or not np.isclose(float(row[name]), float(value), rtol=1e-9, atol=0.0):
                raise ConfigurationError(f"database {folder}: config {i} differs at {name!r} ({row.get(name)!r} stored, {value!r} asked): "
                                         "not the same configs (space, sampling or seed)")
    observations = pd.read_parquet(folder / "observations.parquet")
    missing = sorted(set(task_names) - set(observations["task"]))
    if missing:
        raise ConfigurationError(f"database {folder} lacks task(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    observations = observations[observations["task"].isin(list(task_names)) & observations["seed"].isin(list(seeds))
                                & (observations["config_id"] < len(configs))]
    counts = observations.groupby(["task", "config_id", "seed"]).size()
    expected = len(task_names) * len(configs) * len(seeds)
    if len(counts) != expected or counts.min() < int(epochs) or observations["epoch"].max() < int(epochs):
        raise ConfigurationError(f"database {folder} holds {len(counts)} of the {expected} (task, config, seed) trials "
                                 f"with {int(epochs)} epochs each")
    observations = observations[observations["epoch"] <= int(epochs)].reset_index(drop=True)
    failures_file = folder / "failed_trials.parquet"
    failures = pd.read_parquet(failures_file) if failures_file.is_file() else pd.DataFrame()
    if not failures.empty and {"task", "seed", "config_id"} <= set(failures.columns):
        failures = failures[failures["task"].isin(list(task_names)) & failures["seed"].isin(list(seeds))
                            & (failures["config_id"] < len(configs))].reset_index(drop=True)
    return observations, failures
