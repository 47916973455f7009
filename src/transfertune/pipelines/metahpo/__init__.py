"""``metahpo``: Meta-HPO (seed 003) against random search, GP-BO and Hyperband over subset size."""

from transfertune.pipelines.metahpo.pipeline import create_pipeline

__all__ = ["create_pipeline"]
