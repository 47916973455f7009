"""``hypernet``: hyper-training with hypernets (Lorraine & Duvenaud) on digits (or local MNIST)."""

from transfertune.pipelines.hypernet.pipeline import create_pipeline

__all__ = ["create_pipeline"]
