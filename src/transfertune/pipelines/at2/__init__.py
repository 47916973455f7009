from transfertune.pipelines.at2.pipeline import create_pipeline

__all__ = ["create_pipeline"]
