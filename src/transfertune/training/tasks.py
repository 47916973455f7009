"""From subset manifests (the subsample stage's output) to :class:`TaskData` ready to train on.

Each subset becomes one task: its samples are split once into training and validation parts
(stratified by class, seeded by ``split_seed``, the same for every trial of the task, so trial
seeds are repetitions on one split), and image channels are standardised with the training
part's mean and standard deviation (the preprocessing of seed 001, appendix A.4).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from transfertune.errors import ConfigurationError
from transfertune.training.trainer import CLASSIFICATION, TaskData


def split_indices(
    y: np.ndarray, val_fraction: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of ``range(len(y))``.

    Stratified: each class puts ``round(val_fraction * n_c)`` samples (at least 1 when it has 2
    or more) into validation. Returns sorted ``(train_idx, val_idx)``.
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ConfigurationError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    n = len(y)
    if not stratify:
        perm = rng.permutation(n)
        n_val = min(max(1, int(round(val_fraction * n))), n - 1)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val: list[np.ndarray] = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = int(round(val_fraction * len(members)))
        k = min(max(k, 1 if len(members) >= 2 else 0), len(members) - 1)
        val.append(members[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(n), val_idx)
    return train_idx, val_idx


def standardise(X_train: np.ndarray, X_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (images ``N x C x H x W``) or per-feature (``N x F``) z-scores from the
    training part; constant channels are only centred."""
    axes = (0, 2, 3) if X_train.ndim == 4 else (0,)
    mean = X_train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = X_train.std(axis=axes, keepdims=True, dtype=np.float64)
    std[std < 1e-8] = 1.0
    return ((X_train - mean) / std).astype(np.float32), ((X_val - mean) / std).astype(np.float32)


def task_from_arrays(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    task_type: str = CLASSIFICATION,
    n_classes: int | None = None,
    val_fraction: float = 0.3,
    split_seed: int = 0,
    normalise: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> TaskData:
    """Split and standardise one dataset (``X``: ``(N, ...)``, ``y``: ``(N,)``) into a task."""
    classification = task_type == CLASSIFICATION
    if classification:
        y = np.asarray(y, dtype=np.int64)
        n_classes = int(n_classes if n_classes is not None else int(y.max()) + 1)
    else:
        y = np.asarray(y, dtype=np.float32)
        n_classes = 1
    train_idx, val_idx = split_indices(y, val_fraction, split_seed, stratify=classification)
    X = np.asarray(X, dtype=np.float32)
    X_train, X_val = X[train_idx], X[val_idx]
    if normalise:
        X_train, X_val = standardise(X_train, X_val)
    info = {
        **dict(meta or {}),
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "input_shape": list(X.shape[1:]),
        "n_classes": n_classes,
        "task_type": task_type,
        "val_fraction": float(val_fraction),
        "split_seed": int(split_seed),
    }
    return TaskData(name, X_train, y[train_idx], X_val, y[val_idx], task_type, n_classes, info)


def tasks_from_manifests(
    manifests: Iterable[Any],
    root: str | None = None,
    download: bool = False,
    val_fraction: float = 0.3,
    split_seed: int = 0,
    normalise: bool = True,
) -> list[TaskData]:
    """Materialise :class:`transfertune.data.manifest.SubsetManifest` s into tasks.

    Each source is loaded once (by name and options) and every subset of it is cut with
    ``transfertune.data.manifest.materialise``. The task name is the manifest's ``subset_id``.
    """
    from transfertune.data import load_source, materialise

    manifests = list(manifests)
    names = [m.subset_id for m in manifests]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"subset ids must be unique to name tasks; repeated: {sorted({n for n in names if names.count(n) > 1})}")
    cache: dict[str, Any] = {}
    tasks = []
    for m in manifests:
        key = json.dumps([m.source, m.source_options], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = load_source(m.source, root=root, download=download, **dict(m.source_options))
        subset = materialise(m, cache[key])
        n_classes = len(subset.classes) if subset.task_type == CLASSIFICATION else 1
        meta = {
            "task": m.subset_id,
            "source": m.source,
            "strategy": m.strategy,
            "seed": int(m.seed),
            "classes": m.classes,
            "class_names": [str(c) for c in subset.classes],
            "source_options": dict(m.source_options),
            "indices": [int(i) for i in m.indices],
        }
        tasks.append(
            task_from_arrays(
                m.subset_id, subset.X, subset.y, subset.task_type, n_classes, val_fraction, split_seed, normalise, meta
            )
        )
    return tasks


def describe_tasks(tasks: Sequence[TaskData]) -> list[dict[str, Any]]:
    """JSON-friendly descriptions of tasks (``tasks.json`` beside a catalog)."""
    return [{"task": t.name, **{k: v for k, v in t.meta.items() if k != "task"}} for t in tasks]
