"""Thin glue: parameters checked, the CLI's Tuner and observations, then the recommendation as a table."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from transfertune.core.params import validate_params

log = logging.getLogger(__name__)


class RecommendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database: str
    space: str | None = None
    metric: str | None = None
    method: str = "at2"
    pair: str | None = None
    task: str | None = None
    train_tasks: list[str] = []
    observations: str | None = None
    optuna_storage: str | None = None
    study: str | None = None
    mlflow_uri: str | None = None
    experiment: str | None = None
    mlflow_metric: str | None = None
    direction: Literal["maximize", "minimize"] = "maximize"
    n: int = 3
    budget: int = 100
    seed: int = 0


def recommend(params: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """One row per suggestion (``kind`` next) and one for the predicted best; the text the CLI prints."""
    from transfertune.history.cli import gather_observations, make_tuner
    from transfertune.history.recommend import recommend as recommend_configs

    p = validate_params(RecommendParams, params, "recommend")
    tuner = make_tuner(p.database, p.space, p.metric, p.method, p.pair, p.task, p.train_tasks, p.budget, p.seed, p.direction)
    found = gather_observations(tuner, p.observations, p.optuna_storage, p.study, p.mlflow_uri, p.experiment, p.mlflow_metric)
    result = recommend_configs(tuner, found, p.n)
    rows = [{"kind": "next", "rank": i, **{k: v for k, v in s.items() if k != "config"}, "config": s["config"]}
            for i, s in enumerate(result.suggestions, start=1)]
    if result.predicted_best is not None:
        rows.append({"kind": "predicted_best", "rank": None, **{k: v for k, v in result.predicted_best.items() if k != "config"},
                     "config": result.predicted_best["config"]})
    lines = result.lines()
    for line in lines:
        log.info(line)
    return pd.DataFrame(rows), "\n\n".join(lines) + "\n"
