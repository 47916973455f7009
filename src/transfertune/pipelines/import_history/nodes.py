"""Thin glue: parameters checked, then :mod:`transfertune.history` reads and writes the catalog."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from transfertune.core.params import resolve_path, validate_params
from transfertune.errors import ConfigurationError

log = logging.getLogger(__name__)


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["optuna", "mlflow"] = "optuna"
    storage: str | None = None          # optuna: an RDB URL or a journal file
    studies: list[str] = []             # optuna: default every study
    tracking_uri: str | None = None     # mlflow
    experiments: list[str] = []         # mlflow
    metric_key: str | None = None       # mlflow: the metric whose steps are the epochs
    task_tag: str | None = None         # mlflow: the run tag naming the task
    direction: Literal["maximize", "minimize"] = "maximize"  # mlflow (Optuna studies say theirs)
    params: list[str] = []              # mlflow: default every param
    out: str
    metric: str = "value"
    space: str | None = None
    overwrite: bool = False


def import_history(params: dict[str, Any]) -> dict[str, Any]:
    """Import the history the parameters name; returns the report (written as JSON)."""
    from transfertune.core.spaces import SearchSpace
    from transfertune.history.records import write_catalog

    p = validate_params(ImportParams, params, "import_history")
    space = SearchSpace.from_yaml(resolve_path(p.space)) if p.space else None
    if p.source == "optuna":
        from transfertune.history.optuna_source import read_optuna

        if not p.storage:
            raise ConfigurationError("import_history.storage is not set: give an Optuna storage (sqlite:///file.db or a journal file)")
        storage = p.storage if "://" in p.storage else str(resolve_path(p.storage))
        history = read_optuna(storage, p.studies or None)
    else:
        from transfertune.history.mlflow_source import read_mlflow

        if not p.experiments or not p.metric_key:
            raise ConfigurationError("import_history.experiments and import_history.metric_key are needed for source: mlflow")
        history = read_mlflow(p.tracking_uri, p.experiments, p.metric_key, p.task_tag, p.direction, p.params or None)
    report = write_catalog(history, p.out, metric=p.metric, space=space, overwrite=p.overwrite)
    for line in report.lines():
        log.info(line)
    return report.as_dict()
