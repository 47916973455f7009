"""Baselines on the tabular protocol."""

from transfertune.methods.baselines.simple import RandomSearch, ZeroShotTransfer

__all__ = ["RandomSearch", "ZeroShotTransfer"]
