"""``kedro run --pipeline=siamese``: seed 000, Siamese meta-features and warm-started BO."""

from transfertune.pipelines.siamese.pipeline import create_pipeline

__all__ = ["create_pipeline"]
