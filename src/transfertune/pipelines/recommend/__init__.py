"""``kedro run --pipeline=recommend``: a catalog and a new task's first observations -> the next configs."""

from transfertune.pipelines.recommend.pipeline import create_pipeline

__all__ = ["create_pipeline"]
