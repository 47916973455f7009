"""Target distances between datasets (seed 000, section 3) and the rank statistics that score
a learned distance against them.

A dataset's *mapping* is its recorded metric at the final epoch E for every config of the
catalog: the paper's "histogram of classification accuracy with respect to hyperparameters".
The target distance of two datasets is the L1 distance of their mappings over the configs both
have::

    d_target(i, j) = (1 / |S_ij|) * sum_{c in S_ij} |a_i(c) - a_j(c)|,   S_ij = shared configs

(the paper sums over "all pairwise configurations"; the mean differs by the constant |S| when
every config is shared, and keeps the distances in accuracy units, so the Siamese loss does not
depend on how many configs the catalog has).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr

from transfertune.errors import ConfigurationError

if TYPE_CHECKING:
    from transfertune.core.catalog import ObservationCatalog


def mappings(catalog: "ObservationCatalog", tasks: Sequence[str], epoch: int | None = None, seed: int | None = 0) -> np.ndarray:
    """``(len(tasks), n_configs)`` metric at ``epoch`` (default: the last) per task and config of
    ``catalog.config_ids``; NaN where a task has no record of a config."""
    epochs = list(catalog.epochs)
    epoch = int(epoch if epoch is not None else catalog.max_epoch)
    if epoch not in epochs:
        raise ConfigurationError(f"epoch {epoch} is not recorded in the catalog (epochs {epochs[0]}..{epochs[-1]})")
    missing = [t for t in tasks if t not in catalog.tasks]
    if missing:
        raise ConfigurationError(f"dataset(s) {missing[:5]} have no observations in the catalog {catalog.path}; build it with these datasets")
    column = epochs.index(epoch)
    return np.stack([catalog.grid(t, seed)[:, column] for t in tasks])


def l1_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Mean absolute difference of two mappings ``(n,)`` over the configs both have, and how many."""
    shared = np.isfinite(a) & np.isfinite(b)
    n = int(shared.sum())
    return (float(np.abs(a[shared] - b[shared]).mean()) if n else float("nan")), n


def target_distances(maps: np.ndarray, names: Sequence[str], min_shared: int = 2, others: np.ndarray | None = None,
                     other_names: Sequence[str] | None = None) -> np.ndarray:
    """Pairwise target distances.

    Args:
        maps: ``(n, C)`` mappings (NaN: config not recorded).
        names: the n dataset names (for errors).
        min_shared: configs two datasets must share.
        others, other_names: a second set ``(m, C)``; the result is then ``(n, m)``.

    Returns:
        ``(n, n)`` symmetric with a zero diagonal, or ``(n, m)``.

    Raises:
        ConfigurationError: two datasets share fewer than ``min_shared`` configs (naming both).
    """
    second, second_names = (maps, names) if others is None else (others, other_names or [])
    out = np.zeros((len(maps), len(second)))
    for i in range(len(maps)):
        for j in range(len(second)):
            if others is None and j <= i:
                continue
            d, n = l1_distance(maps[i], second[j])
            if n < int(min_shared):
                raise ConfigurationError(
                    f"datasets {names[i]!r} and {second_names[j]!r} share {n} recorded config(s) in the catalog, fewer than "
                    f"min_shared_configs={min_shared} needed for their target distance; train both on the same configs"
                )
            out[i, j] = d
            if others is None:
                out[j, i] = d
    return out


def spearman(learned: np.ndarray, target: np.ndarray) -> float:
    """Spearman rank correlation of two equally shaped arrays of distances (flattened)."""
    a, b = np.ravel(learned), np.ravel(target)
    if len(a) != len(b) or len(a) < 3:
        raise ConfigurationError(f"spearman needs two arrays of at least 3 equal-length distances, got {len(a)} and {len(b)}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0  # a constant ranking carries no order
    return float(spearmanr(a, b).statistic)


def rowwise_spearman(learned: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(n,)`` Spearman of each row of ``(n, m)`` distances: how well each held-out dataset ranks
    the training datasets, which is what retrieval of its nearest neighbours uses."""
    return np.array([spearman(a, b) for a, b in zip(learned, target)])


def nearest(distances: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest entries of ``distances`` ``(m,)`` (ties: lower index first)."""
    if not 1 <= int(k) <= len(distances):
        raise ConfigurationError(f"k must be in 1..{len(distances)} (the training datasets), got {k}")
    return np.lexsort((np.arange(len(distances)), distances))[: int(k)]
