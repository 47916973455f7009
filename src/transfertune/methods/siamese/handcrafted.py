"""Hand-crafted meta-features: the simple dataset statistics that learned meta-features replace.

Seed 000 contrasts its learned meta-features with "hand-crafted and simple learned meta-features"
(Michie et al. 1994; Feurer et al. 2015). The baseline here takes Feurer et al.'s *simple* and
*statistical* groups that an image dataset has, computed on the training part with each image
flattened to a feature vector:

====================  =================================================================
``log_n``             log of the number of examples
``n_classes``         classes
``class_entropy``     entropy of the class frequencies (nats)
``pixel_mean``        mean of all values
``pixel_std``         standard deviation of all values
``feature_std``       mean over features of each feature's standard deviation over examples
``feature_skewness``  mean over features of the skewness (features with spread only)
``feature_kurtosis``  mean over features of the excess kurtosis (features with spread only)
====================  =================================================================

Distances are Euclidean after z-scoring each statistic with the training datasets' mean and
standard deviation (a constant statistic is only centred), so no statistic dominates by its unit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

STATISTICS = ("log_n", "n_classes", "class_entropy", "pixel_mean", "pixel_std", "feature_std", "feature_skewness", "feature_kurtosis")


def statistics(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The :data:`STATISTICS` of one dataset, ``(N, ...)`` images and ``(N,)`` labels -> ``(8,)``."""
    X = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    y = np.asarray(labels)
    _, counts = np.unique(y, return_counts=True)
    p = counts / counts.sum()
    mean, std = X.mean(axis=0), X.std(axis=0)
    varying = std > 1e-8
    z = (X[:, varying] - mean[varying]) / std[varying]
    skew = float((z**3).mean(axis=0).mean()) if varying.any() else 0.0
    kurt = float((z**4).mean(axis=0).mean() - 3.0) if varying.any() else 0.0
    return np.array([np.log(len(X)), len(counts), float(-(p * np.log(p)).sum()), float(X.mean()), float(X.std()), float(std.mean()), skew, kurt])


class HandcraftedMetaFeatures:
    """z-scored :func:`statistics`: ``fit`` on the training datasets, ``transform`` any dataset.

    Shapes: ``fit(stats (n, 8))``, ``transform(stats (m, 8)) -> (m, 8)``.
    """

    def fit(self, stats: np.ndarray) -> "HandcraftedMetaFeatures":
        stats = np.asarray(stats, dtype=np.float64)
        self.mean_ = stats.mean(axis=0)
        scale = stats.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        return self

    def transform(self, stats: np.ndarray) -> np.ndarray:
        return (np.asarray(stats, dtype=np.float64) - self.mean_) / self.scale_


def dataset_statistics(datasets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """:func:`statistics` of each ``name -> (images, labels)``."""
    return {name: statistics(images, labels) for name, (images, labels) in datasets.items()}
