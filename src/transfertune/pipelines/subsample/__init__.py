"""``subsample``: class subsets, random and adversarial proxy subsets as index manifests."""

from transfertune.pipelines.subsample.pipeline import create_pipeline

__all__ = ["create_pipeline"]
