"""Nodes of ``subsample``: thin glue around :mod:`transfertune.data.plan`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from transfertune.core import tracking
from transfertune.core.device import pick_device
from transfertune.data import manifests_to_frame
from transfertune.data import plan
from transfertune.data.sources import ArraySource


def load_sources(params: dict[str, Any]) -> dict[str, ArraySource]:
    """Every configured source, loaded once (validates the parameters first)."""
    plan.plan_sources(params)
    sources = plan.load_sources(params)
    tracking.log_metrics({f"subsample.{tag}.n_samples": len(s) for tag, s in sources.items()})
    return sources


def score_sources(sources: dict[str, ArraySource], params: dict[str, Any]) -> pd.DataFrame:
    """Probe training and adversarial scoring of every sample (sources with adversarial subsets)."""
    device = pick_device(str(params.get("device", "auto")))
    scores, metrics = plan.score_sources(sources, params, device)
    tracking.log_metrics({f"subsample.{tag}.{k}": v for tag, m in metrics.items() for k, v in m.items()})
    return scores


def sample_subsets(sources: dict[str, ArraySource], scores: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """All subsets as one manifest table (one row per subset and index)."""
    return manifests_to_frame(plan.sample_subsets(sources, scores, params))


def report_subsets(manifests: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Per-subset summary, adversarial-vs-random comparison and the perturbation-norm figure."""
    summary = plan.summarise(manifests)
    comparison = plan.norm_comparison(manifests)
    figure = plan.plot_norms(manifests, scores)
    tracking.log_metrics(
        {f"subsample.{r.tag}.median_norm_{r.strategy}": r.median_norm for r in comparison.itertuples() if pd.notna(r.median_norm)}
    )
    tracking.log_table(comparison, "subsample/norm_comparison.csv")
    tracking.log_figure(figure, "subsample/perturbation_norms.png")
    return summary, comparison, figure
