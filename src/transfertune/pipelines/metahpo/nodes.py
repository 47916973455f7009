"""Nodes of ``metahpo``: thin glue around :mod:`transfertune.methods.metahpo.experiment`.

The probes, hp-learners and observation catalogs go to ``metahpo.store_dir`` (state dicts with
``torch.save``, catalogs in the HyperRec layout, retraining stores of the live protocol); tables
and figures are Kedro datasets under ``data/08_reporting/metahpo_*`` and MLflow artifacts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from transfertune.core import tracking
from transfertune.core.device import torch_threads
from transfertune.core.params import resolve_path
from transfertune.methods.metahpo.config import StudyParams, parse_params, resolve
from transfertune.methods.metahpo.datasets import ExperimentData, load_experiment_data
from transfertune.methods.metahpo.execution import WorkerPool
from transfertune.methods.metahpo.experiment import OfflineRun, retrain, run_offline, run_out_of_sample, settings_of, space_of, space_path
from transfertune.methods.metahpo.method import check_space, observations_frame
from transfertune.methods.metahpo.report import oos_summary, paired_differences, paired_markdown, plot_oos, plot_table1, table1, table1_markdown

log = logging.getLogger(__name__)


def _pool(study: StudyParams) -> WorkerPool:
    e = study.execution
    return WorkerPool(e.workers, e.scheduler_address, e.threads_per_worker)


def prepare(params: Mapping[str, Any]) -> dict[str, ExperimentData]:
    """Check the parameters and load (or generate) every enabled experiment's data."""
    study = parse_params(params)
    out = {}
    for name, experiment in study.experiments.items():
        if not experiment.enabled:
            continue
        resolved = resolve(study, name)
        check_space(space_of(resolved), settings_of(resolved, study.execution, study.device))
        data = load_experiment_data(name, experiment.data.model_dump(), experiment.test_fraction, experiment.val_fraction, experiment.split_seed, study.root)
        log.info("metahpo: %s: %d training and %d test samples of shape %s, %d later batches", name, len(data.source), len(data.test_y),
                 data.source.sample_shape, len(data.stream))
        tracking.log_params({"n_train": len(data.source), "n_test": len(data.test_y), "stream_batches": len(data.stream)}, prefix=f"metahpo.data.{name}")
        out[name] = data
    return out


def compare(data: dict[str, ExperimentData], params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, OfflineRun]]:
    """Table 1's runs: for every experiment and run, Meta-HPO, the ablation and the baselines under
    Meta-HPO's wall clock, then every chosen config retrained on the full data and tested.

    Returns the runs table (one row per experiment x run x method), BOHB's observations, the proxy
    subsets, the meta features, and the offline runs (for the out-of-sample node).
    """
    from transfertune.data.manifest import manifests_to_frame

    study = parse_params(params)
    store = resolve_path(study.store_dir)
    rows, observations, subsets, metas, offline = [], [], [], [], {}
    # the main process fits the hp-learner and runs L-BFGS between trials: one thread, as the
    # workers (execution.torch_threads); two on a loaded 2-core machine stalled it 10-100x
    with _pool(study) as pool, torch_threads(study.execution.torch_threads):
        for name, experiment_data in data.items():
            resolved = resolve(study, name)
            for run in range(study.runs):
                seed = study.seed + run
                result = run_offline(experiment_data, resolved, pool, study.execution, run, seed, study.device, study.progress)
                folder = store / name / f"run{run}"
                table = retrain(experiment_data, result.choices, resolved, pool, study.execution, folder / "retrain", seed, study.device)
                rows.append(table.assign(experiment=name, run=run, seed=seed))
                for strategy, meta_result in result.metahpo.items():
                    _save(meta_result, folder / strategy, resolved)
                    observations.append(observations_frame(meta_result, name).assign(run=run))
                    subsets.append(manifests_to_frame(meta_result.manifests).assign(experiment=name, run=run, meta_strategy=strategy))
                    metas.append(pd.DataFrame([{"experiment": name, "run": run, "strategy": strategy, "subset": k, "meta_feature": json.dumps([float(x) for x in v])}
                                               for k, v in {**meta_result.meta_features, "full": meta_result.full_meta}.items()]))
                offline[f"{name}/run{run}"] = result
                _log_run(name, run, table)
    runs = pd.concat(rows, ignore_index=True)
    front = ["experiment", "run", "seed", "method", "label", "test_metric", "seconds", "retrain_status", "retrain_s", "config"]
    runs = runs[front + [c for c in runs.columns if c not in front]]
    return runs, pd.concat(observations, ignore_index=True), pd.concat(subsets, ignore_index=True), pd.concat(metas, ignore_index=True), offline


def _save(result: Any, folder: Path, resolved: Any) -> None:
    """The probe (state dict), the hp-learner (state dict) and BOHB's observation catalog (one
    task per proxy subset, in the HyperRec layout: ``ObservationCatalog.load`` reads it)."""
    from transfertune.data.adversarial import save_probe
    from transfertune.live.record import RecordedTrial, record_trials

    folder.mkdir(parents=True, exist_ok=True)
    save_probe(folder / "probe.pt", result.probe, result.probe_config, result.probe_shape)
    torch.save(result.learner.state_dict(), folder / "hp_learner.pt")
    space = space_of(resolved)
    for subset in result.hpo:
        trials = [RecordedTrial(t.config, t.records, t.status == "failed", t.reason) for t in subset.trials]
        record_trials(folder / "catalog", subset.subset, trials, 0, space.names, space_path(resolved),
                      metadata={"recorded_by": "metahpo", "model": resolved.experiment.model, "strategy": result.strategy})


def _log_run(name: str, run: int, table: pd.DataFrame) -> None:
    for row in table.itertuples(index=False):
        tracking.log_metrics({f"metahpo.{name}.{row.method}.test_metric": row.test_metric, f"metahpo.{name}.{row.method}.seconds": row.seconds}, step=run)


def out_of_sample(data: dict[str, ExperimentData], offline: dict[str, OfflineRun], params: Mapping[str, Any]) -> pd.DataFrame:
    """Figure 6's scenario on the stream of ``out_of_sample.experiment`` (empty when disabled)."""
    study = parse_params(params)
    oos = study.out_of_sample
    columns = ["run", "batch", "eval_batch", "method", "label", "test_metric", "seconds", "config"]
    if not oos.enabled or oos.experiment not in data:
        return pd.DataFrame(columns=columns)
    resolved = resolve(study, oos.experiment)
    store = resolve_path(study.store_dir)
    frames = []
    # the main process fits the hp-learner and runs L-BFGS between trials: one thread, as the
    # workers (execution.torch_threads); two on a loaded 2-core machine stalled it 10-100x
    with _pool(study) as pool, torch_threads(study.execution.torch_threads):
        for run in range(study.runs):
            seed = study.seed + run
            frame = run_out_of_sample(data[oos.experiment], resolved, offline[f"{oos.experiment}/run{run}"], oos, pool, study.execution,
                                      store / oos.experiment / f"run{run}" / "out_of_sample", seed, study.device, study.progress)
            frames.append(frame.assign(run=run))
    return pd.concat(frames, ignore_index=True)[columns]


def report(runs: pd.DataFrame, oos: pd.DataFrame) -> tuple[pd.DataFrame, str, Any, pd.DataFrame, Any]:
    """Table 1 (CSV, Markdown, figure) and the out-of-sample summary and Figure 6; to MLflow too."""
    table = table1(runs)
    markdown = table1_markdown(table) + "\nPaired by run (same seed, same workers):\n\n" + paired_markdown(paired_differences(runs))
    figure = plot_table1(table)
    summary = oos_summary(oos)
    oos_figure = plot_oos(oos)
    tracking.log_table(table, "metahpo/table1.csv")
    tracking.log_table(table, "metahpo/table1.md")
    tracking.log_figure(figure, "metahpo/table1.png")
    tracking.log_table(summary, "metahpo/out_of_sample.csv")
    tracking.log_figure(oos_figure, "metahpo/out_of_sample.png")
    for row in table.itertuples(index=False):
        tracking.log_metrics({f"metahpo.{row.experiment}.{row.method}.test_mean": row.test_mean, f"metahpo.{row.experiment}.{row.method}.seconds_mean": row.seconds_mean})
    for row in summary.itertuples(index=False):
        tracking.log_metrics({f"metahpo.out_of_sample.{row.method}.test_mean": row.test_mean})
    log.info("metahpo Table 1:\n%s", markdown)
    return table, markdown, figure, summary, oos_figure
