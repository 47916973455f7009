"""Nodes of ``siamese``: thin glue around :mod:`transfertune.methods.siamese.experiment`.

The catalog folder and the live BO stores are written by the library trial by trial (a killed
run resumes both: docs/experiments/siamese.md, "Resuming");
tables and figures are Kedro datasets in data/08_reporting, and go to MLflow (no-ops without a run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from transfertune.core import tracking
from transfertune.methods.siamese import experiment as ex
from transfertune.methods.siamese import report

log = logging.getLogger(__name__)


def make_family(params: Mapping[str, Any]) -> tuple[ex.Family, pd.DataFrame]:
    """The family's tasks (and which are held out); fails on a bad parameter before any training."""
    p = ex.parse_params(params)
    family = ex.make_family(p)
    table = family.table()
    tracking.log_table(table, "siamese/family.csv")
    tracking.log_metrics({"siamese.datasets_train": len(family.train), "siamese.datasets_held_out": len(family.held_out)})
    log.info("siamese: family %s, %d tasks (%d training, %d held out)", family.spec.name, len(family.members), len(family.train), len(family.held_out))
    return family, table


def make_catalog(family: ex.Family, params: Mapping[str, Any]) -> Any:
    """Every task x every catalog config (LHS over the family's space) trained into the
    observation catalog (resumable)."""
    catalog = ex.make_catalog(family, ex.parse_params(params))
    tracking.log_params({f"siamese_catalog.{k}": v for k, v in catalog.summary().items()})
    return catalog


def target_distances(family: ex.Family, catalog: Any, params: Mapping[str, Any]) -> tuple[ex.Targets, pd.DataFrame, Any]:
    """Target distances (``siamese.catalog.target_distance``) between the datasets' mappings, as
    a table and a heat map."""
    targets = ex.target_matrix(family, catalog, ex.parse_params(params))
    figure = report.plot_target_heatmap(targets.names, targets.matrix, family.table(), list(family.spec.factors), targets.kind)
    frame = targets.long()
    tracking.log_table(frame, "siamese/target_distances.csv")
    tracking.log_figure(figure, "siamese/target_heatmap.png")
    return targets, frame, figure


def learn_metafeatures(family: ex.Family, targets: ex.Targets, params: Mapping[str, Any]
                       ) -> tuple[ex.MetaFeatures, pd.DataFrame, pd.DataFrame, pd.DataFrame, Any, pd.DataFrame, pd.DataFrame]:
    """Algorithm 1 per seed; Spearman against the target distances next to the hand-crafted
    baseline; the k nearest training datasets of each held-out one; the loss curves; the
    retrieval regret of learned, hand-crafted, random and oracle neighbours (rows and summary)."""
    p = ex.parse_params(params)
    features = ex.learn_metafeatures(family, targets, p)
    table = ex.spearman_table(family, targets, features)
    summary = ex.spearman_summary(table)
    retrieved = ex.retrievals(family, targets, features, p.bo.k)
    regret = ex.retrieval_regret_table(family, targets, features, p.bo.k)
    regret_summary = ex.retrieval_summary(regret)
    for row in regret_summary.itertuples(index=False):
        key = row.comparison.replace(" - ", "_minus_")
        tracking.log_metrics({f"siamese.retrieval_regret.{row.split}.{key}": row.regret_mean,
                              f"siamese.retrieval_regret.{row.split}.{key}.se": row.regret_se})
    tracking.log_table(regret, "siamese/retrieval_regret.csv")
    tracking.log_table(regret_summary, "siamese/retrieval_regret_summary.csv")
    figure = report.plot_losses({r.seed: r.result.losses for r in features.runs})
    for run in features.runs:
        tracking.log_metric_series(f"siamese.loss.seed{run.seed}", run.result.losses[:: max(1, len(run.result.losses) // 500)].tolist())
    for row in table.itertuples(index=False):
        tracking.log_metrics({f"siamese.spearman.{row.meta_features}.seed{row.seed}": row.per_dataset})
    for row in summary.itertuples(index=False):
        tracking.log_metrics({f"siamese.spearman.{row.meta_features.replace(' ', '')}.mean": row.per_dataset_mean})
    tracking.log_table(table, "siamese/spearman.csv")
    tracking.log_table(summary, "siamese/spearman_summary.csv")
    tracking.log_table(retrieved, "siamese/retrievals.csv")
    tracking.log_figure(figure, "siamese/algorithm1_loss.png")
    return features, table, summary, retrieved, figure, regret, regret_summary


def run_bo(family: ex.Family, catalog: Any, features: ex.MetaFeatures, params: Mapping[str, Any]) -> pd.DataFrame:
    """Algorithm 2 and the baselines of Figure 2, each configuration trained for real."""
    results = ex.run_bo(family, catalog, features, ex.parse_params(params))
    if tracking.active():
        for variant, group in results.groupby("variant", sort=False):
            with tracking.nested_run(f"siamese | {variant}", tags={"method": variant}):
                mean = group.groupby("evaluation")[["best_error", "error", "seconds"]].mean()
                for column in ("best_error", "error", "seconds"):
                    tracking.log_metric_series(column, mean[column].to_numpy())
    return results


def _finite(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in mapping.items()}


def summarise(results: pd.DataFrame, spearman_summary: pd.DataFrame, regret_summary: pd.DataFrame, params: Mapping[str, Any]
              ) -> tuple[pd.DataFrame, Any, str, dict[str, Any]]:
    """Best-so-far curves (table and figure), the Markdown summary and the target checks
    (retrieval regret, BO, and issue 21's Spearman gap)."""
    p = ex.parse_params(params)
    curves = ex.bo_curves(results)
    at = int(results["evaluation"].max())
    target = ex.bo_target(curves, p.bo.method, p.bo.reference, at=at, within=p.bo.target_evaluations)
    retrieval = ex.retrieval_target(regret_summary)
    n = results["repetition"].nunique()
    figure = report.plot_bo_curves(curves, f"Algorithm 2 and Figure 2's baselines, live, {n} repetition(s) (mean +- s.e.)")
    markdown = report.markdown_summary(spearman_summary, curves, target, gaps=ex.paired_gaps(results, p.bo.reference), retrieval=regret_summary,
                                       retrieval_target=retrieval, k=p.bo.k)
    gap = spearman_summary.loc[spearman_summary["meta_features"] == "learned - handcrafted", "per_dataset_mean"]
    checks = {"target_distance": p.catalog.target_distance, "retrieval": _finite(retrieval), "bo": _finite(target),
              "spearman_gap": float(gap.iloc[0]) if len(gap) else float("nan"), "spearman_target_met": bool(len(gap) and gap.iloc[0] >= 0.1)}
    tracking.log_table(curves, "siamese/bo_curves.csv")
    tracking.log_figure(figure, "siamese/bo_best_so_far.png")
    tracking.log_metrics({"siamese.spearman_gap": checks["spearman_gap"], "siamese.bo_target_met": float(bool(target.get("met"))),
                          "siamese.retrieval_target_met": float(bool(retrieval["met"]))})
    for row in curves[curves["evaluation"] == at].itertuples(index=False):
        tracking.log_metrics({f"siamese.{row.variant}.best_error_final": row.best_error_mean})
    return curves, figure, markdown, checks
