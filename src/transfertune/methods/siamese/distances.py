"""Target distances between datasets (seed 000, section 3), the rank statistics that score a
learned distance against them, and the retrieval regret of a set of neighbours.

A dataset's *mapping* is its recorded metric at the final epoch E for every config of the
catalog: the paper's "histogram of classification accuracy with respect to hyperparameters".
The target distance of two datasets is the L1 distance of their mappings over the configs both
have::

    d_target(i, j) = (1 / |S_ij|) * sum_{c in S_ij} |a_i(c) - a_j(c)|,   S_ij = shared configs

(the paper sums over "all pairwise configurations"; the mean differs by the constant |S| when
every config is shared, and keeps the distances in accuracy units, so the Siamese loss does not
depend on how many configs the catalog has).

That distance (``l1``, the default) mostly measures the *level* of two mappings (a dataset that
is harder everywhere is far from an easy one with the same optimum). Two named options
(issue 29) compare where the optimum is instead, by transforming each mapping before the L1:

- ``zscore_l1``: ``z_i(c) = (a_i(c) - mean_i) / sd_i`` over the dataset's recorded configs
  (a constant mapping becomes 0 everywhere);
- ``rank_l1``: ``r_i(c) = (rank_i(c) - 1) / (n_i - 1)``, the mapping's average ranks among its
  ``n_i`` recorded configs scaled to [0, 1] (1: the best config).

**Retrieval regret** (issue 29): a held-out dataset ``h`` tuned by trying the best config of
each of its ``k`` retrieved neighbours (each neighbour's argmax of its own mapping) gets
``max_c a_h(c) - max_{n in N} a_h(argmax_c a_n(c))`` short of its own best
(:func:`retrieval_regret`); for ``k`` neighbours drawn uniformly at random among ``m`` datasets
the expectation is exact (:func:`random_retrieval_regret`).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
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


TARGET_DISTANCES = ("l1", "zscore_l1", "rank_l1")


def transform_mappings(maps: np.ndarray, kind: str = "l1") -> np.ndarray:
    """Each row of ``maps (n, C)`` as the target distance ``kind`` compares it (NaN kept):
    ``l1`` as recorded, ``zscore_l1`` standardised, ``rank_l1`` normalised ranks (module docstring)."""
    from scipy.stats import rankdata

    if kind not in TARGET_DISTANCES:
        raise ConfigurationError(f"unknown target distance {kind!r}; choose one of {list(TARGET_DISTANCES)}")
    maps = np.asarray(maps, dtype=np.float64)
    if kind == "l1":
        return maps.copy()
    out = np.full_like(maps, np.nan)
    for i, row in enumerate(maps):
        seen = np.isfinite(row)
        values = row[seen]
        if kind == "zscore_l1":
            sd = values.std() if len(values) else 0.0
            out[i, seen] = (values - values.mean()) / sd if sd > 0 else 0.0
        else:
            out[i, seen] = (rankdata(values) - 1.0) / (len(values) - 1) if len(values) > 1 else 0.0
    return out


def target_distances(maps: np.ndarray, names: Sequence[str], min_shared: int = 2, others: np.ndarray | None = None,
                     other_names: Sequence[str] | None = None, kind: str = "l1") -> np.ndarray:
    """Pairwise target distances.

    Args:
        maps: ``(n, C)`` mappings (NaN: config not recorded).
        names: the n dataset names (for errors).
        min_shared: configs two datasets must share.
        others, other_names: a second set ``(m, C)``; the result is then ``(n, m)``.
        kind: ``l1`` (the paper's), ``zscore_l1`` or ``rank_l1`` (:func:`transform_mappings`).

    Returns:
        ``(n, n)`` symmetric with a zero diagonal, or ``(n, m)``.

    Raises:
        ConfigurationError: two datasets share fewer than ``min_shared`` configs (naming both).
    """
    maps = transform_mappings(maps, kind)
    others = None if others is None else transform_mappings(others, kind)
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


def best_configs(maps: np.ndarray) -> np.ndarray:
    """``(n,)`` column of each row's largest recorded value (ties: the lower column)."""
    maps = np.asarray(maps, dtype=np.float64)
    if not np.isfinite(maps).any(axis=1).all():
        raise ConfigurationError("a mapping has no recorded config; cannot take its best config")
    return np.nanargmax(maps, axis=1)


def retrieval_regret(target: np.ndarray, neighbour_maps: np.ndarray) -> float:
    """``max target - max_n target[argmax neighbour_maps[n]]``: how far the best of the neighbours'
    best configs, evaluated on the target's mapping ``(C,)``, falls short of the target's best.
    A pick the target has not recorded counts as not tried."""
    target = np.asarray(target, dtype=np.float64)
    values = target[best_configs(np.atleast_2d(neighbour_maps))]
    values = values[np.isfinite(values)]
    return float(np.nanmax(target) - values.max()) if len(values) else float("nan")


def random_retrieval_regret(target: np.ndarray, candidate_maps: np.ndarray, k: int) -> float:
    """The exact expectation of :func:`retrieval_regret` over ``k`` neighbours drawn uniformly
    without replacement from the ``m`` rows of ``candidate_maps``: with ``v_(1) <= ... <= v_(m)``
    the candidates' best configs valued on ``target``, ``P(max = v_(i)) = C(i-1, k-1) / C(m, k)``."""
    target = np.asarray(target, dtype=np.float64)
    values = np.sort(target[best_configs(np.atleast_2d(candidate_maps))])
    m = len(values)
    if not 1 <= int(k) <= m:
        raise ConfigurationError(f"k must be in 1..{m} (the candidate datasets), got {k}")
    if not np.isfinite(values).all():
        raise ConfigurationError("a candidate's best config is not recorded on the target; random retrieval regret needs them all")
    weights = np.array([comb(i - 1, int(k) - 1) for i in range(1, m + 1)], dtype=np.float64) / comb(m, int(k))
    return float(np.nanmax(target) - (weights * values).sum())
