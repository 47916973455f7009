"""``tune``: any registered method against live training on a task of the subsample stage."""

from transfertune.pipelines.tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
