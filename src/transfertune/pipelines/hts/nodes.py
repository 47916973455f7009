"""Nodes of ``hts``: thin glue around :mod:`transfertune.methods.hts.experiment`.

The live runs keep their own stores (``hts.store_dir``: event logs, trial files, checkpoints), so a
killed run resumes and a rerun with the same parameters trains nothing; the tables and the figure
are Kedro datasets and go to MLflow (no-ops without an active run).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from transfertune.core import tracking
from transfertune.core.params import validate_params
from transfertune.errors import ConfigurationError

log = logging.getLogger(__name__)
SPACE = Path(__file__).resolve().parents[4] / "conf" / "base" / "spaces" / "hts_cnn.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskParams(_Strict):
    """One task of the subsample stage: the ``subset``-th class subset of ``source`` drawn with
    ``seed``, or ``subset_id`` of the subsample pipeline's table ``manifests``."""

    source: str = "digits"
    source_options: dict[str, Any] = Field(default_factory=dict)
    n_classes: int = Field(5, ge=2)
    n_per_class: int | None = Field(None, ge=1)
    seed: int = 0
    subset: int = Field(0, ge=0)
    manifests: str | None = None
    subset_id: str | None = None


class ExecutionParams(_Strict):
    workers: int = Field(1, ge=1)
    torch_threads: int | None = 1
    device: str = "auto"
    amp: bool | str = "auto"
    deterministic: bool = True
    eval_batch_size: int = Field(1024, ge=1)


class HTSParams(_Strict):
    source: TaskParams = Field(default_factory=TaskParams)
    target: TaskParams = Field(default_factory=lambda: TaskParams(n_classes=10, n_per_class=60))
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.3, gt=0, lt=1)
    split_seed: int = 0
    epochs: int = Field(4, ge=1)
    source_evaluations: int = Field(40, ge=1)
    t_max: int = Field(30, ge=1)
    repetitions: int = Field(5, ge=1)
    methods: dict[str, dict[str, Any] | bool | None]
    baseline: str = "no_transfer"
    seed: int = 0
    train_seed: int = 0
    store_dir: str
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    progress: bool = True


def parse_params(params: Mapping[str, Any]) -> HTSParams:
    """The ``hts`` parameters, checked; a ConfigurationError names each bad key."""
    parsed = validate_params(HTSParams, params, "hts")
    # `label: false` turns a configured method off (a command line cannot delete a key)
    parsed.methods = {k: (v if isinstance(v, dict) else {}) for k, v in parsed.methods.items() if v is not False}
    if parsed.baseline not in parsed.methods:
        raise ConfigurationError(f"hts.baseline {parsed.baseline!r} is not one of hts.methods ({sorted(parsed.methods)})")
    return parsed


def _settings(p: HTSParams):
    from transfertune.training.runner import TrainSettings

    e = p.execution
    return TrainSettings(model="hts_cnn", epochs=p.epochs, device=e.device, amp=e.amp, deterministic=e.deterministic,
                         torch_threads=e.torch_threads, eval_batch_size=e.eval_batch_size)


def _space():
    from transfertune.core.spaces import SearchSpace

    return SearchSpace.from_yaml(SPACE)


def prepare_tasks(params: Mapping[str, Any]) -> tuple[Any, Any]:
    """The source and target tasks (split and standardised)."""
    from transfertune.methods.hts.experiment import make_task

    p = parse_params(params)
    tasks = []
    for side, spec in (("source", p.source), ("target", p.target)):
        if spec.manifests is not None and spec.subset_id is None:
            raise ConfigurationError(f"hts.{side}.manifests is set: name the subset with hts.{side}.subset_id")
        tasks.append(make_task(spec.source, spec.source_options, spec.n_classes, spec.n_per_class, spec.seed, spec.subset, spec.manifests,
                               spec.subset_id, p.root, p.download, p.val_fraction, p.split_seed))
    source, target = tasks
    if _same_data(source, target):
        raise ConfigurationError(f"hts.source and hts.target are the same subset {source.name!r}; transfer needs two datasets")
    if source.name == target.name:  # e.g. subset 0 of two draws of one seed with other class counts
        source, target = (dataclasses.replace(t, name=f"{side}-{t.name}") for side, t in (("source", source), ("target", target)))
    for side, task in (("source", source), ("target", target)):
        log.info("hts: %s task %s, classes %s (%d training, %d validation samples)", side, task.name, task.meta.get("classes"),
                 len(task.X_train), len(task.X_val))
    tracking.log_params({"source_task": source.name, "target_task": target.name}, prefix="hts")
    return source, target


def _same_data(a: Any, b: Any) -> bool:
    keys = ("source", "source_options", "indices")
    return all(a.meta.get(k) == b.meta.get(k) for k in keys)


def tune_source(source: Any, params: Mapping[str, Any]) -> tuple[Any, pd.DataFrame]:
    """Omega_S: HORD's ``source_evaluations`` evaluations on the source task."""
    from transfertune.methods.hts.experiment import tune_source as run

    p = parse_params(params)
    catalog, table = run(source, _space(), _settings(p), p.source_evaluations, Path(p.store_dir) / "source" / source.name, seed=p.seed,
                         train_seed=p.train_seed, workers=p.execution.workers, progress=p.progress)
    log.info("hts: source %s: %d evaluations, best val_acc %.4f", source.name, len(table), table["val_acc"].max())
    tracking.log_table(table, "hts/source_observations.csv")
    return catalog, table


def tune_target(target: Any, source_catalog: Any, params: Mapping[str, Any]) -> pd.DataFrame:
    """Every method x repetition on the target task, t_max evaluations each."""
    from transfertune.methods.hts.experiment import tune_target as run

    p = parse_params(params)
    return run(target, source_catalog, _space(), _settings(p), p.methods, p.repetitions, p.t_max, Path(p.store_dir) / "target", seed=p.seed,
               train_seed=p.train_seed, workers=p.execution.workers, progress=p.progress)


def report(results: pd.DataFrame, params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str, Any]:
    """Per-evaluation table, mean best-error curves, evaluations to reach the baseline, Figure 1."""
    from transfertune.methods.hts.experiment import best_error_curves, evaluations, evaluations_to_reach, plot_curves, reach_markdown

    p = parse_params(params)
    table = evaluations(results, p.epochs, p.t_max)
    curves = best_error_curves(table)
    reach = evaluations_to_reach(table, p.baseline)
    markdown = reach_markdown(reach)
    title = f"{p.repetitions} seed(s), {p.epochs} epoch(s) per evaluation"
    figure = plot_curves(curves, title=title, baseline=p.baseline)
    log.info("hts: evaluations to reach %s's final error\n%s", p.baseline, markdown)
    tracking.log_figure(figure, "hts/figure1.png")
    for name, frame in (("evaluations", table), ("curves", curves), ("ratios", reach)):
        tracking.log_table(frame, f"hts/{name}.csv")
    for method, curve in curves.groupby("method", sort=False):
        with tracking.nested_run(f"hts | {method}", tags={"method": method}):
            tracking.log_metric_series("best_error", curve["best_error_mean"].tolist())
    for row in reach.itertuples(index=False):
        tracking.log_metrics({f"hts.{row.method}.final_best_error": row.method_final_error,
                              **({f"hts.{row.method}.ratio": row.ratio} if pd.notna(row.ratio) else {})})
    return table, curves, reach, markdown, figure
