"""Nodes of ``build_catalog``: thin glue around :mod:`transfertune.training`.

The catalog folder (``build_catalog.output_dir``) is written by the library, not through Kedro
datasets: it is many files plus a per-trial store that must be written trial by trial, and its
location is a parameter so that one command line builds a catalog anywhere. The report outputs
(run summary, per-task table, learning-curves figure) are Kedro datasets in data/08_reporting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from transfertune.core import tracking
from transfertune.core.params import resolve_path
from transfertune.errors import ConfigurationError, TransfertuneError

log = logging.getLogger(__name__)

KEYS = {
    "output_dir", "store_dir", "model", "model_options", "fixed", "space", "metric", "epochs", "seeds",
    "configs", "tasks", "pairs", "failed_trials", "execution", "progress",
}
TASK_KEYS = {"from", "family", "manifests", "subset_ids", "class_subsets", "root", "download", "val_fraction", "split_seed", "normalise"}
CONFIG_KEYS = {"method", "n", "seed", "list"}
EXECUTION_KEYS = {"workers", "scheduler_address", "threads_per_worker", "torch_threads", "device", "amp", "deterministic", "eval_batch_size"}


def _check_keys(given: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigurationError(f"unknown parameter(s) {where}.{unknown}; known: {sorted(known)}")


def space_file(params: Mapping[str, Any]) -> Path:
    """The space YAML: ``space`` if set, else the model's default ``conf/base/spaces/<space>.yml``."""
    from transfertune.training.models import get_model_spec

    given = params.get("space") or f"conf/base/spaces/{get_model_spec(str(params.get('model', 'hts_cnn'))).space}.yml"
    path = resolve_path(given)
    if not path.is_file():
        raise ConfigurationError(f"build_catalog.space: the space file {given} does not exist")
    return path


def prepare_tasks(params: Mapping[str, Any]) -> list[Any]:
    """Tasks (split, standardised arrays) from subset manifests or freshly drawn class subsets."""
    from transfertune.data import load_source, manifests_from_frame
    from transfertune.data.samplers import class_subsets
    from transfertune.training.tasks import tasks_from_manifests

    _check_keys(params, KEYS, "build_catalog")
    spec = dict(params.get("tasks") or {})
    _check_keys(spec, TASK_KEYS, "build_catalog.tasks")
    origin = spec.get("from", "class_subsets")
    if origin == "family":
        from transfertune.data.families import build_family, spec_from_params

        family = dict(spec.get("family") or {})
        seed = int(family.pop("seed", 0))
        tasks = [t.task for t in build_family(spec_from_params(family), seed=seed)]
        wanted = spec.get("subset_ids")
        if wanted:
            missing = sorted(set(wanted) - {t.name for t in tasks})
            if missing:
                raise ConfigurationError(f"build_catalog.tasks.subset_ids {missing} are not among the family's tasks")
            tasks = [t for t in tasks if t.name in set(wanted)]
        log.info("build_catalog: %d family tasks", len(tasks))
        return tasks
    if origin == "manifests":
        path = resolve_path(spec.get("manifests") or "")
        if not path.is_file():
            raise ConfigurationError(
                f"build_catalog.tasks.manifests: {spec.get('manifests')!r} is not a file; run the subsample pipeline "
                "first or set tasks.from: class_subsets"
            )
        manifests = manifests_from_frame(pd.read_parquet(path))
    elif origin == "class_subsets":
        cs = dict(spec.get("class_subsets") or {})
        _check_keys(cs, {"source", "source_options", "n_subsets", "n_classes", "n_per_class", "distinct_classes", "seed"}, "build_catalog.tasks.class_subsets")
        source = load_source(
            str(cs.get("source", "digits")), root=spec.get("root"), download=bool(spec.get("download", False)), **dict(cs.get("source_options") or {})
        )
        manifests = class_subsets(
            source,
            n_subsets=cs.get("n_subsets", 5),
            n_classes=cs.get("n_classes", 5),
            n_per_class=cs.get("n_per_class"),
            seed=int(cs.get("seed", 0)),
            distinct_classes=bool(cs.get("distinct_classes", True)),
        )
    else:
        raise ConfigurationError(f"build_catalog.tasks.from must be 'manifests', 'class_subsets' or 'family', got {origin!r}")
    wanted = spec.get("subset_ids")
    if wanted:
        known = {m.subset_id for m in manifests}
        missing = sorted(set(wanted) - known)
        if missing:
            raise ConfigurationError(f"build_catalog.tasks.subset_ids {missing} are not among the subsets {sorted(known)}")
        manifests = [m for m in manifests if m.subset_id in set(wanted)]
    tasks = tasks_from_manifests(
        manifests,
        root=spec.get("root"),
        download=bool(spec.get("download", False)),
        val_fraction=float(spec.get("val_fraction", 0.3)),
        split_seed=int(spec.get("split_seed", 0)),
        normalise=bool(spec.get("normalise", True)),
    )
    log.info("build_catalog: %d tasks: %s", len(tasks), ", ".join(f"{t.name} ({len(t.X_train)}+{len(t.X_val)})" for t in tasks))
    return tasks


def sample_configs(params: Mapping[str, Any]) -> pd.DataFrame:
    """The configs to train, one row per config (``config_id`` + the space's names)."""
    from transfertune.core.spaces import SearchSpace
    from transfertune.training.sampling import configs_to_records, sample_configs as sample

    spec = dict(params.get("configs") or {})
    _check_keys(spec, CONFIG_KEYS, "build_catalog.configs")
    space = SearchSpace.from_yaml(space_file(params))
    configs = sample(space, str(spec.get("method", "lhs")), int(spec.get("n", 16)), int(spec.get("seed", 0)), spec.get("list"))
    return pd.DataFrame(configs_to_records(configs))


def _settings(params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    from transfertune.training.runner import TrainSettings

    execution = dict(params.get("execution") or {})
    _check_keys(execution, EXECUTION_KEYS, "build_catalog.execution")
    epochs = params.get("epochs", 5)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigurationError(f"build_catalog.epochs must be a positive integer, got {epochs!r}")
    settings = TrainSettings(
        model=str(params.get("model", "hts_cnn")),
        epochs=int(epochs),
        fixed=dict(params.get("fixed") or {}),
        options=dict(params.get("model_options") or {}),
        device=str(execution.get("device", "auto")),
        amp=execution.get("amp", "auto"),
        deterministic=bool(execution.get("deterministic", True)),
        torch_threads=execution.get("torch_threads", 1),
        eval_batch_size=int(execution.get("eval_batch_size", 1024)),
    )
    return settings, execution


def train_catalog(tasks: list[Any], configs: pd.DataFrame, params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train every trial not stored yet and write the catalog folder ``output_dir``."""
    from transfertune.training.build import build_catalog

    settings, execution = _settings(params)
    seeds = [int(s) for s in (params.get("seeds") or [0])]
    config_list = [{k: v for k, v in row.items() if k != "config_id" and pd.notna(v)} for row in configs.to_dict(orient="records")]
    out_dir = Path(params.get("output_dir") or "data/03_primary/digits_catalog")

    def on_trial_done(summary: dict[str, Any], report: Any) -> None:
        tracking.log_metrics(
            {"trials_done": report.ran, "trials_failed": report.failed, "trials_per_minute": report.trials_per_minute},
            step=report.ran,
        )

    report, observations, failures = build_catalog(
        tasks,
        config_list,
        seeds,
        settings,
        out_dir,
        space_file(params),
        store_dir=params.get("store_dir"),
        workers=int(execution.get("workers", 1)),
        scheduler_address=execution.get("scheduler_address"),
        threads_per_worker=int(execution.get("threads_per_worker", 1)),
        pairs=dict(params.get("pairs") or {}),
        failed_policy=str(params.get("failed_trials", "pad")),
        progress=bool(params.get("progress", True)),
        on_trial_done=on_trial_done,
        metadata={"metric": params.get("metric", "val_acc"), "space_file": str(space_file(params))},
    )
    run = {**report.as_dict(), "output_dir": str(out_dir), "rows": int(len(observations))}
    tracking.log_metrics(
        {
            "trials_total": report.total,
            "trials_skipped": report.skipped,
            "trials_completed": report.completed,
            "trials_failed_total": report.failed,
            "trials_errors": len(report.errors),
            "throughput_trials_per_minute": report.trials_per_minute,
            "train_wall_time_s": report.wall_time_s,
        }
    )
    log.info(
        "build_catalog: %d trials (%d already stored, %d completed, %d diverged, %d errors) in %.1f s -> %s",
        report.total, report.skipped, report.completed, report.failed, len(report.errors), report.wall_time_s, out_dir,
    )
    return observations, failures, run


def report_catalog(observations: pd.DataFrame, failures: pd.DataFrame, run: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[pd.DataFrame, Any]:
    """Per-task summary table and learning-curves figure; fails the run if any trial raised."""
    from transfertune.training.report import catalog_summary, learning_curves_figure

    metric = str(params.get("metric", "val_acc"))
    if metric not in observations.columns:
        raise ConfigurationError(f"build_catalog.metric {metric!r} is not a column of the catalog; columns: {list(observations.columns)}")
    table = catalog_summary(observations, failures, metric)
    figure = learning_curves_figure(observations, metric)
    tracking.log_table(table, "build_catalog_tasks.csv")
    tracking.log_figure(figure, "build_catalog_learning_curves.png")
    if run.get("errors"):
        first = run["errors"][0]
        raise TransfertuneError(
            f"{len(run['errors'])} trial(s) raised errors and were not recorded (the rest of the catalog is written to "
            f"{run['output_dir']}; rerun to retry them). First: task={first['task']} config_id={first['config_id']} "
            f"seed={first['seed']}: {first['error']}"
        )
    return table, figure
