"""``hts``: HTS (seed 001) against HORD and "linear" transfer on live training of the HTS CNN."""

from transfertune.pipelines.hts.pipeline import create_pipeline

__all__ = ["create_pipeline"]
