"""Subset manifests: a subset is a list of row indices into its source, never a copy of the data.

A manifest travels between stages as a long table (Parquet), one row per ``(subset_id, index)``::

    subset_id | source | strategy | seed | index | label | perturbation_norm | classes | source_options

``classes`` and ``source_options`` are JSON strings repeated on every row of a subset (so a single
table round-trips without a side file). ``label`` is the sample's label in the *source's* label
space (float, so classification and regression subsets share one column). ``perturbation_norm``
is the weighted norm of the smallest successful adversarial perturbation found for the sample:
NaN where the attack was not run, ``inf`` where it ran and did not succeed within its budget.

The train stage rebuilds a subset's data with::

    source = load_source(m.source, root=..., **m.source_options)
    subset = materialise(m, source)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from transfertune.data.sources import ArraySource
from transfertune.errors import DataValidationError

STRATEGIES = ("class_subset", "random_proxy", "adversarial_proxy")
FRAME_COLUMNS = [
    "subset_id",
    "source",
    "strategy",
    "seed",
    "index",
    "label",
    "perturbation_norm",
    "classes",
    "source_options",
]


@dataclass
class SubsetManifest:
    """One subset of one source.

    Attributes:
        subset_id: unique and stable (derived from source, strategy, seed and position).
        source: the :class:`ArraySource` name the indices point into.
        strategy: ``"class_subset"``, ``"random_proxy"`` or ``"adversarial_proxy"``.
        seed: the sampler seed that produced this subset (with ``subset_id`` it reproduces it).
        indices: int64 ``(n,)`` row indices into the source, sorted by the sampler's order (class
            subsets: class by class; adversarial subsets: closest to the boundary first).
        classes: for class subsets, the chosen class indices of the source (``source.classes``
            positions) in the order that defines the remapped labels ``0..k-1``; else ``None``.
        perturbation_norm: float64 ``(n,)`` per selected sample, NaN where not computed.
        source_options: the options to pass back to ``load_source`` (path, split, limit...).
        labels: float64 ``(n,)`` labels of the selected samples in the source's label space.
    """

    subset_id: str
    source: str
    strategy: str
    seed: int
    indices: np.ndarray
    classes: list | None = None
    perturbation_norm: np.ndarray | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        if self.strategy not in STRATEGIES:
            raise DataValidationError(f"subset {self.subset_id!r}: unknown strategy {self.strategy!r}, expected one of {STRATEGIES}")
        if self.perturbation_norm is None:
            self.perturbation_norm = np.full(len(self.indices), np.nan)
        self.perturbation_norm = np.asarray(self.perturbation_norm, dtype=np.float64).reshape(-1)
        if len(self.perturbation_norm) != len(self.indices):
            raise DataValidationError(
                f"subset {self.subset_id!r}: {len(self.indices)} indices but {len(self.perturbation_norm)} perturbation norms"
            )
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.float64).reshape(-1)
            if len(self.labels) != len(self.indices):
                raise DataValidationError(f"subset {self.subset_id!r}: {len(self.indices)} indices but {len(self.labels)} labels")

    @property
    def size(self) -> int:
        return int(len(self.indices))


def manifests_to_frame(manifests: list[SubsetManifest]) -> pd.DataFrame:
    """One row per ``(subset_id, index)``, columns :data:`FRAME_COLUMNS`, in manifest order."""
    ids = [m.subset_id for m in manifests]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[0]
        raise DataValidationError(f"subset_id {dup!r} appears in more than one manifest")
    parts = []
    for m in manifests:
        n = m.size
        parts.append(
            pd.DataFrame(
                {
                    "subset_id": [m.subset_id] * n,
                    "source": [m.source] * n,
                    "strategy": [m.strategy] * n,
                    "seed": np.full(n, int(m.seed), dtype=np.int64),
                    "index": m.indices,
                    "label": m.labels if m.labels is not None else np.full(n, np.nan),
                    "perturbation_norm": m.perturbation_norm,
                    "classes": [json.dumps(m.classes)] * n,
                    "source_options": [json.dumps(m.source_options, sort_keys=True)] * n,
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    return pd.concat(parts, ignore_index=True).astype(_DTYPES)


_DTYPES = {
    "subset_id": object,
    "source": object,
    "strategy": object,
    "seed": np.int64,
    "index": np.int64,
    "label": np.float64,
    "perturbation_norm": np.float64,
    "classes": object,
    "source_options": object,
}


def manifests_from_frame(frame: pd.DataFrame) -> list[SubsetManifest]:
    """Inverse of :func:`manifests_to_frame`; subsets come back in first-appearance order.

    ``classes`` and ``source_options`` may be absent (older or hand-written tables): they read
    as ``None`` and ``{}``.
    """
    required = ["subset_id", "source", "strategy", "seed", "index"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(f"subset manifest table lacks the column(s) {missing}; it has {list(frame.columns)}")
    out = []
    for subset_id, rows in frame.groupby("subset_id", sort=False):
        first = rows.iloc[0]
        for col in ("source", "strategy", "seed"):
            if rows[col].nunique() != 1:
                raise DataValidationError(f"subset {subset_id!r}: column {col!r} differs between its rows")
        classes = json.loads(first["classes"]) if "classes" in rows and isinstance(first["classes"], str) else None
        options = json.loads(first["source_options"]) if "source_options" in rows and isinstance(first["source_options"], str) else {}
        out.append(
            SubsetManifest(
                subset_id=str(subset_id),
                source=str(first["source"]),
                strategy=str(first["strategy"]),
                seed=int(first["seed"]),
                indices=rows["index"].to_numpy(dtype=np.int64),
                classes=classes,
                perturbation_norm=rows["perturbation_norm"].to_numpy(dtype=np.float64) if "perturbation_norm" in rows else None,
                source_options=options,
                labels=rows["label"].to_numpy(dtype=np.float64) if "label" in rows else None,
            )
        )
    return out


def materialise(manifest: SubsetManifest, source: ArraySource) -> ArraySource:
    """The subset's data: ``X[indices]``, ``y[indices]`` as a new :class:`ArraySource`.

    Class subsets get labels remapped to ``0..k-1`` in the order of ``manifest.classes`` and
    ``classes`` set to those class names; other subsets keep the source's labels and classes.
    The returned source is named ``subset_id`` so that trained models can be traced back.

    Raises:
        DataValidationError: the manifest points into another source or out of its range.
    """
    if manifest.source != source.name:
        raise DataValidationError(f"subset {manifest.subset_id!r} indexes source {manifest.source!r}, not {source.name!r}")
    idx = manifest.indices
    if len(idx) == 0:
        raise DataValidationError(f"subset {manifest.subset_id!r} is empty")
    if idx.min() < 0 or idx.max() >= len(source):
        raise DataValidationError(
            f"subset {manifest.subset_id!r} has index {int(idx.max() if idx.max() >= len(source) else idx.min())} outside "
            f"source {source.name!r} of {len(source)} samples (was it loaded with other options? {manifest.source_options})"
        )
    X, y = source.X[idx], source.y[idx]
    classes = list(source.classes)
    if manifest.classes is not None and source.task_type == "classification":
        chosen = [int(c) for c in manifest.classes]
        lookup = np.full(max(source.n_classes, max(chosen) + 1), -1, dtype=np.int64)
        lookup[chosen] = np.arange(len(chosen))
        y = lookup[y]
        if (y < 0).any():
            raise DataValidationError(f"subset {manifest.subset_id!r} holds samples outside its classes {manifest.classes}")
        classes = [source.classes[c] for c in chosen]
    options = {**source.options, "subset_id": manifest.subset_id}
    return ArraySource(manifest.subset_id, X, y, source.task_type, classes, source.data_range, options)
