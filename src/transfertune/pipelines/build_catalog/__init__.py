"""``build_catalog``: train a target model over configs x subsets into an observation catalog."""

from transfertune.pipelines.build_catalog.pipeline import create_pipeline

__all__ = ["create_pipeline"]
