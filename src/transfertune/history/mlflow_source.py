"""MLflow experiments as past tuning (:class:`~transfertune.history.records.History`).

A run is a trial: its params are its config, the history of one metric (``log_metric(key,
value, step=...)``) its epochs (epoch k is the k-th smallest step any run of the task logged).
A task is an experiment, or with ``task_tag`` the runs that share that tag's value.

Run states: ``FINISHED`` runs are kept; ``KILLED`` runs keep the steps they logged (stopped
early, like Optuna's pruned trials); ``FAILED`` runs are left out, and so are ``RUNNING`` and
``SCHEDULED`` ones unless ``running=True`` (an experiment in progress, for ``recommend``).

MLflow stores params as strings and says nothing about their distributions, so the space is
inferred from the values: a param whose values all read as integers is an integer, as numbers a
float (log scale when all are positive and they span at least two decades), else categorical; the
range is the values' range. Pass a space YAML to fix it instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from transfertune.errors import ConfigurationError
from transfertune.history.records import DIRECTIONS, History, TrialRecord, epochs_from_steps

LOG_SPAN = 100.0  # max / min at which a positive numeric param is taken to be log-uniform


def parse_param(text: str) -> Any:
    """An MLflow param string as the value it was: int, float, bool, None or the string."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def infer_distribution(values: list[Any]) -> dict[str, Any]:
    """A space entry for a param seen with ``values`` (see the module docstring)."""
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numeric) == len(values) and all(math.isfinite(v) for v in numeric):
        low, high = min(numeric), max(numeric)
        kind = "integer" if all(isinstance(v, int) for v in numeric) else "float"
        log = low > 0 and high / low >= LOG_SPAN
        return {"type": kind, "lower": low, "upper": high, "log": bool(log)}
    return {"type": "categorical", "choices": list(dict.fromkeys(values))}


def read_mlflow(
    tracking_uri: str | None,
    experiments: Sequence[str],
    metric: str,
    task_tag: str | None = None,
    direction: str = "maximize",
    params: Sequence[str] | None = None,
    running: bool = False,
) -> History:
    """The runs of ``experiments`` (names or ids) as a :class:`History`.

    Args:
        tracking_uri: the MLflow store (None: MLflow's default, ``MLFLOW_TRACKING_URI``).
        metric: the metric key whose step history is the learning curve.
        task_tag: a run tag whose value names the task (default: the experiment's name).
        direction: whether ``metric`` was maximised or minimised (MLflow does not record it).
        params: the params that make the config (default: every param of the runs).

    One-line ConfigurationErrors: an unknown experiment, a metric that no run logged, a
    ``task_tag`` no run has, a bad direction.
    """
    from mlflow.tracking import MlflowClient

    if direction not in DIRECTIONS:
        raise ConfigurationError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not experiments:
        raise ConfigurationError("name at least one MLflow experiment")
    client = MlflowClient(tracking_uri=tracking_uri)
    history = History(records=[], distributions={}, direction=direction, source=f"mlflow {tracking_uri or '(default store)'}")
    by_task: dict[str, list[tuple[Any, dict[int, float]]]] = {}
    for name in experiments:
        experiment = client.get_experiment_by_name(str(name))
        if experiment is None and str(name).isdigit():
            try:
                experiment = client.get_experiment(str(name))
            except Exception:  # MLflow raises its own exception type for an unknown id
                experiment = None
        if experiment is None:
            known = [e.name for e in client.search_experiments()]
            raise ConfigurationError(f"MLflow experiment {name!r} is not in {tracking_uri or 'the default store'} (experiments: {', '.join(known) or 'none'})")
        runs, token = [], None
        while True:
            page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
        metrics_seen, with_metric, with_tag = set(), 0, 0
        for run in runs:
            metrics_seen.update(run.data.metrics)
            status = run.info.status
            if status == "FAILED" or (status in ("RUNNING", "SCHEDULED") and not running):
                history.skip(f"MLflow status {status}")
                continue
            if metric not in run.data.metrics:
                history.skip(f"no metric {metric!r}")
                continue
            with_metric += 1
            task = run.data.tags.get(task_tag) if task_tag else experiment.name
            if task is None:
                history.skip(f"no tag {task_tag!r}")
                continue
            with_tag += 1
            steps = {int(m.step): float(m.value) for m in client.get_metric_history(run.info.run_id, metric)}
            by_task.setdefault(str(task), []).append((run, steps))
        if runs and not metrics_seen & {metric}:
            raise ConfigurationError(
                f"metric {metric!r} is in none of the {len(runs)} runs of experiment {experiment.name!r} (metrics: {', '.join(sorted(metrics_seen)) or 'none'})"
            )
        if task_tag and with_metric and not with_tag:
            raise ConfigurationError(f"tag {task_tag!r} is on none of the runs of experiment {experiment.name!r} that logged {metric!r}")
    values_of: dict[str, list[Any]] = {}
    for task, runs in by_task.items():
        per_epoch, cut = epochs_from_steps([steps for _, steps in runs])
        if cut:
            history.notes.append(f"task {task!r}: {cut} run(s) cut at their first missing or non-finite step")
        for (run, _), values in zip(runs, per_epoch):
            if not values:
                history.skip("no finite value at the first step")
                continue
            config = {k: parse_param(v) for k, v in run.data.params.items() if params is None or k in params}
            for k, v in config.items():
                values_of.setdefault(k, []).append(v)
            history.records.append(TrialRecord(task=task, params=config, values=values, source=f"MLflow run {run.info.run_id} ({task})"))
    if params is not None:
        missing = [p for p in params if p not in values_of]
        if missing:
            raise ConfigurationError(f"param(s) {missing} are in none of the runs imported")
    history.distributions = {k: infer_distribution(v) for k, v in values_of.items()}
    return history
