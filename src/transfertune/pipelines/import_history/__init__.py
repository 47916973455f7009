"""``kedro run --pipeline=import_history``: Optuna studies or MLflow runs -> an observation catalog."""

from transfertune.pipelines.import_history.pipeline import create_pipeline

__all__ = ["create_pipeline"]
