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


class PairParams(_Strict):
    """One source -> target pair. ``family`` set: two tasks of that task family
    (:mod:`transfertune.data.families`, drawn with ``family_seed``), ``source`` and ``target``
    their factor levels (the first task with those levels), the family's model and space. No
    ``family``: two tasks of the subsample stage (:class:`TaskParams`), the HTS CNN and Table 1's
    space (the paper's setting)."""

    family: str | None = None
    family_seed: int = 0
    source: dict[str, Any] = Field(default_factory=dict)
    target: dict[str, Any] = Field(default_factory=dict)


class HTSParams(_Strict):
    pairs: dict[str, PairParams | bool | None]
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.3, gt=0, lt=1)
    split_seed: int = 0
    epochs: int = Field(2, ge=1)
    source_evaluations: int = Field(40, ge=1)
    t_max: int = Field(50, ge=1)
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
    # `label: false` turns a configured method or pair off (a command line cannot delete a key)
    parsed.methods = {k: (v if isinstance(v, dict) else {}) for k, v in parsed.methods.items() if v is not False}
    parsed.pairs = {k: v for k, v in parsed.pairs.items() if isinstance(v, PairParams)}
    if not parsed.pairs:
        raise ConfigurationError("hts.pairs: no pair is turned on")
    if parsed.baseline not in parsed.methods:
        raise ConfigurationError(f"hts.baseline {parsed.baseline!r} is not one of hts.methods ({sorted(parsed.methods)})")
    return parsed


def _settings(p: HTSParams, model: str = "hts_cnn", fixed: Mapping[str, Any] | None = None):
    from transfertune.training.runner import TrainSettings

    e = p.execution
    return TrainSettings(model=model, epochs=p.epochs, fixed=dict(fixed or {}), device=e.device, amp=e.amp, deterministic=e.deterministic,
                         torch_threads=e.torch_threads, eval_batch_size=e.eval_batch_size)


def _space(path: str | Path = SPACE):
    from transfertune.core.spaces import SearchSpace

    path = Path(path)
    return SearchSpace.from_yaml(path if path.is_absolute() else Path(__file__).resolve().parents[4] / path)


def _subset_pair(label: str, pair: PairParams, p: HTSParams) -> tuple[Any, Any]:
    from transfertune.methods.hts.experiment import make_task

    tasks = []
    for side, raw in (("source", pair.source), ("target", pair.target)):
        spec = validate_params(TaskParams, raw, f"hts.pairs.{label}.{side}")
        if spec.manifests is not None and spec.subset_id is None:
            raise ConfigurationError(f"hts.pairs.{label}.{side}.manifests is set: name the subset with hts.pairs.{label}.{side}.subset_id")
        tasks.append(make_task(spec.source, spec.source_options, spec.n_classes, spec.n_per_class, spec.seed, spec.subset, spec.manifests,
                               spec.subset_id, p.root, p.download, p.val_fraction, p.split_seed))
    source, target = tasks
    if _same_data(source, target):
        raise ConfigurationError(f"hts.pairs.{label}: source and target are the same subset {source.name!r}; transfer needs two datasets")
    if source.name == target.name:  # e.g. subset 0 of two draws of one seed with other class counts
        source, target = (dataclasses.replace(t, name=f"{side}-{t.name}") for side, t in (("source", source), ("target", target)))
    return source, target


def prepare_tasks(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every pair's source and target task (split and standardised), model, space and fixed settings."""
    from transfertune.methods.hts.experiment import family_pair

    p = parse_params(params)
    pairs = {}
    for label, pair in p.pairs.items():
        if pair.family is not None:
            spec, source, target = family_pair(pair.family, pair.source, pair.target, seed=pair.family_seed)
            entry = {"model": spec.model, "space": spec.space, "fixed": dict(spec.fixed)}
        else:
            source, target = _subset_pair(label, pair, p)
            entry = {"model": "hts_cnn", "space": str(SPACE), "fixed": {}}
        pairs[label] = {"source": source, "target": target, **entry}
        for side, task in (("source", source), ("target", target)):
            log.info("hts: pair %s: %s task %s (%d training, %d validation samples)", label, side, task.name, len(task.X_train), len(task.X_val))
        tracking.log_params({f"{label}.source_task": source.name, f"{label}.target_task": target.name}, prefix="hts")
    return pairs


def _same_data(a: Any, b: Any) -> bool:
    keys = ("source", "source_options", "indices")
    return all(a.meta.get(k) == b.meta.get(k) for k in keys)


def tune_source(pairs: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """Omega_S of each pair: HORD's ``source_evaluations`` evaluations on its source task."""
    from transfertune.methods.hts.experiment import tune_source as run

    p = parse_params(params)
    catalogs, tables = {}, []
    for label, pair in pairs.items():
        source = pair["source"]
        catalog, table = run(source, _space(pair["space"]), _settings(p, pair["model"], pair["fixed"]), p.source_evaluations,
                             Path(p.store_dir) / label / "source" / source.name, seed=p.seed, train_seed=p.train_seed,
                             workers=p.execution.workers, progress=p.progress)
        log.info("hts: pair %s: source %s: %d evaluations, best val_acc %.4f", label, source.name, len(table), table["val_acc"].max())
        catalogs[label] = catalog
        tables.append(table.assign(pair=label))
    table = pd.concat(tables, ignore_index=True)
    tracking.log_table(table, "hts/source_observations.csv")
    return catalogs, table


def tune_target(pairs: Mapping[str, Mapping[str, Any]], source_catalogs: Mapping[str, Any], params: Mapping[str, Any]) -> pd.DataFrame:
    """Every pair x method x repetition on the pair's target task, t_max evaluations each."""
    from transfertune.methods.hts.experiment import tune_target as run

    p = parse_params(params)
    frames = []
    for label, pair in pairs.items():
        results = run(pair["target"], source_catalogs[label], _space(pair["space"]), _settings(p, pair["model"], pair["fixed"]), p.methods,
                      p.repetitions, p.t_max, Path(p.store_dir) / label / "target", seed=p.seed, train_seed=p.train_seed,
                      workers=p.execution.workers, progress=p.progress)
        results.insert(0, "pair", label)
        frames.append(results)
    return pd.concat(frames, ignore_index=True)


def report(results: pd.DataFrame, params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str, Any]:
    """Per pair: per-evaluation table, mean best-error curves, evaluations to reach the baseline;
    the markdown of every pair's table, and Figure 1 with one panel per pair."""
    from transfertune.methods.hts.experiment import best_error_curves, evaluations, evaluations_to_reach, plot_curves, reach_markdown

    p = parse_params(params)
    tables, all_curves, reaches, sections = [], [], [], []
    for label, pair_results in results.groupby("pair", sort=False):
        table = evaluations(pair_results.drop(columns="pair"), p.epochs, p.t_max)
        curves = best_error_curves(table)
        reach = evaluations_to_reach(table, p.baseline)
        sections.append(f"### {label}\n\n{reach_markdown(reach)}")
        tables.append(table.assign(pair=label))
        all_curves.append(curves.assign(pair=label))
        reaches.append(reach.assign(pair=label))
        for row in reach.itertuples(index=False):
            tracking.log_metrics({f"hts.{label}.{row.method}.final_best_error": row.method_final_error,
                                  **({f"hts.{label}.{row.method}.ratio": row.ratio} if pd.notna(row.ratio) else {})})
        for method, curve in curves.groupby("method", sort=False):
            with tracking.nested_run(f"hts | {label} | {method}", tags={"method": method, "pair": label}):
                tracking.log_metric_series("best_error", curve["best_error_mean"].tolist())
    table, curves, reach = (pd.concat(x, ignore_index=True) for x in (tables, all_curves, reaches))
    markdown = "\n".join(sections)
    title = f"{p.repetitions} seed(s), {p.epochs} epoch(s) per evaluation"
    figure = plot_curves(curves, title=title, baseline=p.baseline)
    log.info("hts: evaluations to reach %s's final error\n%s", p.baseline, markdown)
    tracking.log_figure(figure, "hts/figure1.png")
    for name, frame in (("evaluations", table), ("curves", curves), ("ratios", reach)):
        tracking.log_table(frame, f"hts/{name}.csv")
    return table, curves, reach, markdown, figure
