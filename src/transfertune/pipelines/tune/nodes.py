"""Nodes of ``tune``: thin glue around :mod:`transfertune.live` and :mod:`transfertune.training`.

The tuning runs write their own stores (``tune.store_dir``: event logs, trial files and
checkpoints, trial by trial) rather than Kedro datasets, so that a killed run resumes; the
results table, summary, curves and figure are Kedro datasets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from transfertune.core import tracking
from transfertune.core.params import resolve_path, validate_params
from transfertune.errors import ConfigurationError

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseParams(_Strict):
    path: str | None = None
    space: str | None = None
    metric: str = "val_acc"
    data_seed: int = 0


class ClassSubsetParams(_Strict):
    source: str = "digits"
    source_options: dict[str, Any] = Field(default_factory=dict)
    n_subsets: int = 1
    n_classes: int = 5
    n_per_class: int | None = None
    distinct_classes: bool = True
    seed: int = 1


class TaskParams(_Strict):
    from_: Literal["class_subsets", "manifests", "family"] = Field("class_subsets", alias="from")
    family: dict[str, Any] = Field(default_factory=dict)
    subset_id: str | None = None
    manifests: str | None = None
    class_subsets: ClassSubsetParams = Field(default_factory=ClassSubsetParams)
    root: str | None = None
    download: bool = False
    val_fraction: float = 0.3
    split_seed: int = 0
    normalise: bool = True


class ExecutionParams(_Strict):
    workers: int = Field(1, ge=1)
    scheduler_address: str | None = None
    threads_per_worker: int = Field(1, ge=1)
    torch_threads: int | None = 1
    device: str = "auto"
    amp: bool | str = "auto"
    deterministic: bool = True
    eval_batch_size: int = 1024


class RecordParams(_Strict):
    catalog: str | None = None


class TuneParams(_Strict):
    database: DatabaseParams = Field(default_factory=DatabaseParams)
    task: TaskParams = Field(default_factory=TaskParams)
    model: str = "mlp"
    model_options: dict[str, Any] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    space: str | None = None
    max_epochs: int | None = Field(None, ge=1)
    methods: dict[str, dict[str, Any] | bool | None]
    repetitions: int = Field(1, ge=1)
    budget: int = Field(50, ge=1)
    budget_seconds: float | None = Field(None, gt=0)
    seed: int = 0
    train_seed: int = 0
    store_dir: str
    summary_qs: list[int] = Field(default_factory=lambda: [10, 25, 50])
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    record: RecordParams = Field(default_factory=RecordParams)
    progress: bool = True


def parse_params(params: Mapping[str, Any]) -> TuneParams:
    """The ``tune`` parameters, checked; a ConfigurationError names each bad key."""
    parsed = validate_params(TuneParams, params, "tune")
    # `label: false` turns a configured method off (a command line cannot delete a key)
    parsed.methods = {k: (v if isinstance(v, dict) else {}) for k, v in parsed.methods.items() if v is not False}
    if not parsed.methods:
        raise ConfigurationError("tune.methods is empty; name at least one method, e.g. {random_space: {}}")
    return parsed


def prepare_task(params: Mapping[str, Any]) -> Any:
    """The task to tune: one subset of the subsample stage or one task of a family (``task.from:
    family``, ``task.family: {preset, seed, <FamilySpec field>...}``), split and standardised."""
    from transfertune.data import load_source, manifests_from_frame
    from transfertune.data.samplers import class_subsets
    from transfertune.training.tasks import tasks_from_manifests

    spec = parse_params(params).task
    if spec.from_ == "family":
        from transfertune.data.families import build_family, spec_from_params

        family = dict(spec.family)
        seed = int(family.pop("seed", 0))
        members = {t.name: t.task for t in build_family(spec_from_params(family), seed=seed)}
        wanted = spec.subset_id or next(iter(members))
        if wanted not in members:
            raise ConfigurationError(f"tune.task.subset_id {wanted!r} is not among the family's tasks {sorted(members)}")
        log.info("tune: family task %s (%d training, %d validation samples)", wanted, len(members[wanted].X_train), len(members[wanted].X_val))
        return members[wanted]
    if spec.from_ == "manifests":
        path = resolve_path(spec.manifests or "")
        if not path.is_file():
            raise ConfigurationError(f"tune.task.manifests: {spec.manifests!r} is not a file; run the subsample pipeline first or set task.from: class_subsets")
        manifests = manifests_from_frame(pd.read_parquet(path))
    else:
        cs = spec.class_subsets
        source = load_source(cs.source, root=spec.root, download=spec.download, **cs.source_options)
        manifests = class_subsets(source, n_subsets=cs.n_subsets, n_classes=cs.n_classes, n_per_class=cs.n_per_class, seed=cs.seed,
                                  distinct_classes=cs.distinct_classes)
    known = [m.subset_id for m in manifests]
    wanted = spec.subset_id or known[0]
    if wanted not in known:
        raise ConfigurationError(f"tune.task.subset_id {wanted!r} is not among the subsets {known}")
    manifest = next(m for m in manifests if m.subset_id == wanted)
    task = tasks_from_manifests([manifest], root=spec.root, download=spec.download, val_fraction=spec.val_fraction,
                                split_seed=spec.split_seed, normalise=spec.normalise)[0]
    log.info("tune: task %s (%d training, %d validation samples)", task.name, len(task.X_train), len(task.X_val))
    return task


def tune(task: Any, params: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every method x repetition against live training on ``task``; one row per told epoch.

    Each run keeps its store in ``<store_dir>/<task>/<method>/rep<r>``: a rerun with the same
    parameters replays what is there and trains only what is missing.
    """
    from transfertune.core.spaces import SearchSpace
    from transfertune.live.runner import run_live
    from transfertune.live.tuner import TRIALS_DIR, Tuner, load_database
    from transfertune.training.models import get_model_spec
    from transfertune.training.objective import TrainingObjective
    from transfertune.training.runner import TrainSettings

    p = parse_params(params)
    database = None
    if p.database.path:
        database = load_database(resolve_path(p.database.path), resolve_path(p.database.space) if p.database.space else None, p.database.metric)
    space_path = resolve_path(p.space or f"conf/base/spaces/{get_model_spec(p.model).space}.yml")
    space = database.space if database is not None else SearchSpace.from_yaml(space_path)
    max_epochs = p.max_epochs or (database.max_epoch if database is not None else None)
    if max_epochs is None:
        raise ConfigurationError("tune.max_epochs must be set when tune.database.path is null")
    settings = TrainSettings(
        model=p.model, epochs=int(max_epochs), fixed=p.fixed, options=p.model_options, device=p.execution.device, amp=p.execution.amp,
        deterministic=p.execution.deterministic, torch_threads=p.execution.torch_threads, eval_batch_size=p.execution.eval_batch_size,
    )
    frames, info = [], {"task": task.name, "runs": []}
    for label, options in p.methods.items():
        options = dict(options or {})
        name = options.pop("method", label)
        for repetition in range(p.repetitions):
            seed = p.seed + repetition
            store = resolve_path(p.store_dir) / task.name / label / f"rep{repetition}"
            with Tuner(database=database, space=space, method=name, store=store, method_options=options, metric=p.database.metric,
                       budget=p.budget, budget_seconds=p.budget_seconds, max_epochs=max_epochs, seed=seed, task=task.name,
                       data_seed=p.database.data_seed) as tuner:
                objective = TrainingObjective(task, settings, store / TRIALS_DIR, seed=p.train_seed, metric=p.database.metric, space=space)
                told_before = len(tuner.told)
                report = run_live(tuner, objective, workers=p.execution.workers, scheduler_address=p.execution.scheduler_address,
                                  threads_per_worker=p.execution.threads_per_worker, progress=p.progress)
                history = tuner.history()
                configs = {t: s.config for t, s in tuner.searcher.trials.items()}
                states = {t: (s.status, s.reason) for t, s in tuner.searcher.trials.items()}
            history.insert(0, "method", label)
            history.insert(1, "task", task.name)
            history.insert(2, "repetition", repetition)
            history.insert(3, "seed", seed)
            history["config"] = history["trial"].map(lambda t: _json(configs[t]))
            frames.append(history)
            run = {"method": label, "repetition": repetition, "store": str(store), "epochs_told_before": told_before,
                   "epochs_trained": report.epochs_trained, "epochs_recovered": report.epochs_recovered, "units": report.units,
                   "trials": len(configs), "failed": sum(s == "failed" for s, _ in states.values()), "errors": report.errors,
                   "seconds": float(history["t"].iloc[-1]) if len(history) else 0.0}
            info["runs"].append(run)
            log.info("tune: %s rep %d: %d epochs (%d trained now, %d recovered from the store, %d told before), %d trials, %d failed",
                     label, repetition, len(history), report.epochs_trained, report.epochs_recovered, told_before, len(configs), run["failed"])
    if p.record.catalog:
        info["recorded"] = _record(p, task, frames, space, space_path, database)
    results = _results(frames)
    _log_runs(results)
    return results, info


def _json(config: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(config), sort_keys=True)


def _results(frames: list[pd.DataFrame]) -> pd.DataFrame:
    from transfertune.live.report import RESULT_COLUMNS, with_regret

    results = with_regret(pd.concat(frames, ignore_index=True))
    metrics = [c for c in results.columns if c not in RESULT_COLUMNS]
    return results[[*RESULT_COLUMNS, *metrics]]


def _record(p: TuneParams, task: Any, frames: list[pd.DataFrame], space: Any, space_path: Path, database: Any) -> dict[str, int]:
    """Append every run's trials to the catalog ``record.catalog``."""
    import json

    from transfertune.live.record import RecordedTrial, record_trials
    from transfertune.live.tuner import TRIALS_DIR
    from transfertune.training.store import LiveTrialStore

    trials = []
    for frame in frames:
        label, repetition = frame["method"].iloc[0], int(frame["repetition"].iloc[0])
        store = LiveTrialStore(resolve_path(p.store_dir) / task.name / label / f"rep{repetition}" / TRIALS_DIR)
        for trial_id, config in frame.groupby("trial")["config"].first().items():
            stored = store.load(int(trial_id), checkpoint=False)
            trials.append(RecordedTrial(json.loads(config), stored.records, stored.status == "failed", stored.reason))
    base = database.path if database is not None else None
    space_file = base / "space.yml" if base is not None and (base / "space.yml").is_file() else space_path
    return record_trials(resolve_path(p.record.catalog), task.name, trials, p.train_seed, space.names, space_file, base,
                         {k: v for k, v in task.meta.items() if k != "task"}, {"recorded_by": "tune"})


def _log_runs(results: pd.DataFrame) -> None:
    """One nested MLflow run per (method, task): best-so-far, value and seconds per epoch spent."""
    if not tracking.active():
        return
    for (method, task), group in results.groupby(["method", "task"], sort=False):
        with tracking.nested_run(f"{method} | {task}", tags={"method": method, "pair": task}):
            tracking.log_params({"method": method, "task": task, "repetitions": group["repetition"].nunique()})
            mean = group.groupby("q")[["best", "value", "t", "regret"]].mean()
            for column in ("best", "value", "regret"):
                tracking.log_metric_series(column, mean[column].to_numpy())
            tracking.log_metric_series("seconds", mean["t"].to_numpy())
            last = group[group["q"] == group["q"].max()]
            tracking.log_metrics({"final_best": last["best"].mean(), "final_regret": last["regret"].mean(), "wall_time_s": last["t"].mean()})


def summarise(results: pd.DataFrame, params: Mapping[str, Any]) -> tuple[pd.DataFrame, str, pd.DataFrame, Any]:
    """Summary at ``summary_qs`` (and each method's last epoch), its Markdown, the curves, the figure."""
    from transfertune.live.report import live_curves, live_markdown, live_summary, plot_live

    p = parse_params(params)
    table = live_summary(results, p.summary_qs)
    curve_table = live_curves(results)
    figure = plot_live(results, p.database.metric, title=f"task {', '.join(results['task'].unique())}, {results['repetition'].nunique()} repetition(s)")
    markdown = live_markdown(table)
    tracking.log_table(table, "summary.csv")
    tracking.log_table(curve_table, "curves.csv")
    tracking.log_figure(figure, "best_so_far.png")
    for row in table.itertuples(index=False):
        tracking.log_metrics({f"{row.method}.best_q{row.q}": row.best_mean, f"{row.method}.seconds_q{row.q}": row.seconds_mean})
    return table, markdown, curve_table, figure
