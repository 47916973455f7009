"""MLflow helpers that are safe to call with or without an active run.

The Kedro hook (``transfertune.hooks``) opens one MLflow run per ``kedro run``; library and
node code logs through these helpers, which do nothing when no run is active (unit tests,
notebooks), so the algorithms never depend on a tracking server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import mlflow


def active() -> bool:
    return mlflow.active_run() is not None


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log a nested mapping as flat ``a.b.c`` parameters (values truncated to MLflow's limit)."""
    if not active():
        return
    flat = flatten(params, prefix)
    items = list(flat.items())
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        mlflow.log_params({k: str(v)[:6000] for k, v in items[start : start + 100]})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    if active():
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_metric_series(name: str, values: list[float] | Any, start_step: int = 1) -> None:
    """Log ``values[i]`` at step ``start_step + i`` in one batch, so the UI draws a curve."""
    if not active():
        return
    from mlflow.entities import Metric
    import time

    now = int(time.time() * 1000)
    metrics = [Metric(name, float(v), now, start_step + i) for i, v in enumerate(values)]
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def log_figure(figure: Any, artifact_file: str) -> None:
    if active():
        mlflow.log_figure(figure, artifact_file)


def log_table(frame: Any, artifact_file: str) -> None:
    """Log a pandas DataFrame as a CSV (or Markdown, by suffix) artifact."""
    if not active():
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        if path.suffix == ".md":
            path.write_text(frame.to_markdown(index=False))
        else:
            frame.to_csv(path, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)


@contextmanager
def nested_run(run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[None]:
    """A nested MLflow run under the active one; a no-op context without an active run."""
    if not active():
        yield
        return
    with mlflow.start_run(run_name=run_name, nested=True, tags=dict(tags or {})):
        yield


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out
