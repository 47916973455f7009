"""Thin Kedro glue around ``transfertune.methods.hypernet``: read parameters, call the library,
log figures, curves and tables to MLflow (no-ops without an active run)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from transfertune.core import tracking
from transfertune.core.device import pick_device
from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet.data import DataSplit, load_split
from transfertune.methods.hypernet.evaluation import (
    ExperimentConfig,
    comparison_experiment,
    figure2_experiment,
    figure3_experiment,
    plot_comparison,
    plot_figure2,
    plot_figure3,
)

_RUN_KEYS = ("data", "device", "progress")


def _config(params: Mapping[str, Any]) -> tuple[ExperimentConfig, bool]:
    """The experiment settings and the progress-bar switch from ``params:hypernet``."""
    if not isinstance(params, Mapping):
        raise ConfigurationError("parameters 'hypernet' must be a mapping; see conf/base/parameters_hypernet.yml")
    rest = {k: v for k, v in params.items() if k not in _RUN_KEYS}
    return ExperimentConfig.from_dict(rest), bool(params.get("progress", True))


def _slug(text: str) -> str:
    """An MLflow-safe metric name."""
    return re.sub(r"[^\w.\-/ ]+", "", text).strip().replace(" ", "_")


def load_data(params: Mapping[str, Any]) -> DataSplit:
    """The train / validation / test split on the chosen device."""
    _config(params)  # fail on a bad parameter before any work
    data = dict(params.get("data") or {})
    unknown = sorted(set(data) - {"dataset", "n_train", "n_val", "n_test", "mnist_root"})
    if unknown:
        raise ConfigurationError(f"hypernet data: unknown key(s) {unknown}")
    split = load_split(seed=int(params.get("seed", 0)), **data)
    tracking.log_params(split.sizes(), prefix="hypernet.data_sizes")
    return split.to(pick_device(str(params.get("device", "auto"))))


def run_figure2(data: DataSplit, params: Mapping[str, Any]) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Figure 2: hypernet-predicted vs actually-trained losses over one global L2."""
    cfg, progress = _config(params)
    result = figure2_experiment(data, cfg, progress)
    figure = plot_figure2(result)
    tracking.log_figure(figure, "hypernet/figure2.png")
    tracking.log_metric_series("hypernet.figure2.local_lam_hat", result.trajectory["lam_hat"].tolist())
    tracking.log_table(result.summary, "hypernet/figure2_summary.csv")
    points = pd.concat([result.curves.assign(source="hypernet"),
                        result.trained.drop(columns="evaluations").assign(source="trained", algorithm="trained")],
                       ignore_index=True)
    return figure, points, result.summary


def run_figure3(data: DataSplit, params: Mapping[str, Any]) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Figure 3: predicted vs true validation loss for GP, pairs hypernet, hyper-trained hypernet."""
    cfg, progress = _config(params)
    result = figure3_experiment(data, cfg, progress)
    figure = plot_figure3(result.points)
    tracking.log_figure(figure, "hypernet/figure3.png")
    tracking.log_table(result.summary, "hypernet/figure3_summary.csv")
    for row in result.summary.itertuples():
        tracking.log_metrics({f"hypernet.figure3.{_slug(row.method)}.rmse": row.rmse})
    return figure, result.points, result.summary


def run_comparison(data: DataSplit, params: Mapping[str, Any]) -> tuple[Any, pd.DataFrame]:
    """One L2 per weight (and per class, global) by local hyper-training vs BO of one global L2."""
    cfg, progress = _config(params)
    result = comparison_experiment(data, cfg, progress)
    figure = plot_comparison(result.curves)
    tracking.log_figure(figure, "hypernet/comparison.png")
    tracking.log_table(result.table, "hypernet/comparison.csv")
    for method, curve in result.curves.groupby("method", sort=False):
        tracking.log_metric_series(f"hypernet.curve.{_slug(method)}", curve["val_loss"].tolist())
    for row in result.table.itertuples():
        tracking.log_metrics({f"hypernet.{_slug(row.method)}.val_loss": row.val_loss,
                              f"hypernet.{_slug(row.method)}.test_loss": row.test_loss})
    return figure, result.table


def summarise(figure2: pd.DataFrame, figure3: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    """All headline numbers in one long table: ``experiment, method, metric, value``."""
    parts = []
    for name, frame, key in (("figure2", figure2, "algorithm"), ("figure3", figure3, "method"),
                             ("comparison", comparison, "method")):
        long = frame.melt(id_vars=[key], var_name="metric", value_name="value").rename(columns={key: "method"})
        parts.append(long.assign(experiment=name))
    summary = pd.concat(parts, ignore_index=True)[["experiment", "method", "metric", "value"]]
    tracking.log_table(summary, "hypernet/summary.csv")
    return summary
