from transfertune.pipelines.benchmark.pipeline import create_pipeline

__all__ = ["create_pipeline"]
