from transfertune.pipelines.at2_kernel_study.pipeline import create_pipeline

__all__ = ["create_pipeline"]
