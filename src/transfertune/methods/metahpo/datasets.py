"""The data of a Meta-HPO experiment: a full training set to tune on, a test set, and for the
out-of-sample scenario (section 4.4) batches that arrive later, in time order.

Sources:

* ``drift_stream`` (generated here, the default): a classification stream in batches whose
  concept drifts (:func:`drift_stream`). The first ``offline_batches`` batches pooled are the
  offline data set (tens of thousands of rows); the next ``stream_batches`` are the newly
  arriving data of the out-of-sample scenario;
* any source of :func:`transfertune.data.sources.load_source` (``digits``, ``cifar10`` read from a
  local folder, a ``table`` file, ...). torchvision sets use their own test split; the others
  hold out a stratified ``test_fraction``;
* ``family``: one task of a task family (:mod:`transfertune.data.families`, issue 27), options
  ``family`` (a preset name or ``{preset: name, <field>: value}``), ``task`` (its index) and
  ``seed`` (the family's draw). The task's training part is the full training set, its
  validation part (``n_val`` examples, clean labels) the test set (``test_fraction`` is not
  used). Its inputs stay as the family made them (standardised with the training part's
  statistics, then multiplied by the task's ``input_scale``), so subsets and the full set are
  not standardised again (``normalise = False``): that would undo the scale factor. For an
  ``mnist1d`` family, ``stream_batches`` / ``stream_rows`` / ``stream_drift`` add later batches
  (new draws of the generator, on the task's scale) for the out-of-sample scenario.

Tables are standardised with the offline training set's statistics (later batches with the same
ones); images stay in ``[0, 1]`` (the tasks standardise channels, see
:mod:`transfertune.training.tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import expm

from transfertune.data.sources import TORCHVISION, ArraySource, load_source
from transfertune.errors import ConfigurationError
from transfertune.training.tasks import split_indices, standardise, task_from_arrays
from transfertune.training.trainer import CLASSIFICATION, TaskData


def drift_stream(
    n_batches: int,
    rows_per_batch: int,
    n_features: int = 20,
    n_informative: int = 8,
    n_classes: int = 5,
    clusters_per_class: int = 2,
    class_sep: float = 1.5,
    rotation_per_batch: float = 0.25,
    label_noise: float = 0.05,
    label_noise_per_batch: float = 0.02,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A classification stream whose concept drifts from batch to batch.

    Batch ``b`` (``b = 0..n_batches-1``) holds ``rows_per_batch`` i.i.d. rows:

    * class ``c`` is a mixture of ``clusters_per_class`` Gaussian clusters ``N(mu_ck, I)`` in an
      ``n_informative``-dimensional space, the centres ``mu_ck ~ N(0, class_sep^2 I)`` fixed
      for the whole stream (classes equally likely);
    * the informative part is rotated by ``R_b = expm(b * rotation_per_batch * A)``, ``A`` a fixed
      random skew-symmetric matrix of unit Frobenius norm: the class regions turn a little more
      with every batch (concept drift);
    * ``n_features - n_informative`` further columns: half random linear mixtures of the rotated
      informative ones, half pure noise ``N(0, 1)``;
    * each label is replaced by a uniformly drawn class with probability
      ``label_noise + b * label_noise_per_batch`` (the noise grows, so the best regularisation
      shifts along the stream).

    Returns:
        ``[(X_b, y_b)]``, ``X_b`` float32 ``(rows_per_batch, n_features)``, ``y_b`` int64.
    """
    for name, value, low in (("n_batches", n_batches, 1), ("rows_per_batch", rows_per_batch, 2), ("n_features", n_features, 1),
                             ("n_informative", n_informative, 1), ("n_classes", n_classes, 2), ("clusters_per_class", clusters_per_class, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ConfigurationError(f"drift_stream.{name} must be an integer >= {low}, got {value!r}")
    if n_informative > n_features:
        raise ConfigurationError(f"drift_stream.n_informative ({n_informative}) exceeds n_features ({n_features})")
    top = label_noise + (n_batches - 1) * label_noise_per_batch
    if not (0 <= label_noise <= 1 and 0 <= top <= 1):
        raise ConfigurationError(f"drift_stream: the label noise must stay in [0, 1]; it reaches {top:g} at the last batch")
    rng = np.random.default_rng(seed)
    k = int(n_informative)
    centres = rng.normal(scale=class_sep, size=(n_classes, clusters_per_class, k))
    skew = rng.normal(size=(k, k))
    skew = skew - skew.T
    skew /= np.linalg.norm(skew) or 1.0
    n_extra = int(n_features) - k
    n_mixed = n_extra // 2
    mixing = rng.normal(size=(k, n_mixed)) / np.sqrt(k)
    batches = []
    for b in range(int(n_batches)):
        rotation = expm(b * rotation_per_batch * skew)
        y = rng.integers(0, n_classes, size=rows_per_batch)
        cluster = rng.integers(0, clusters_per_class, size=rows_per_batch)
        informative = (centres[y, cluster] + rng.normal(size=(rows_per_batch, k))) @ rotation.T
        noise = rng.normal(size=(rows_per_batch, n_extra - n_mixed))
        X = np.hstack([informative, informative @ mixing, noise])
        flip = rng.random(rows_per_batch) < label_noise + b * label_noise_per_batch
        y = np.where(flip, rng.integers(0, n_classes, size=rows_per_batch), y)
        batches.append((X.astype(np.float32), y.astype(np.int64)))
    return batches


@dataclass
class ExperimentData:
    """Everything one experiment tunes on and tests with.

    Attributes:
        name: the experiment's name.
        source: the full training set (what proxy subsets are cut from and the probe learns).
        normalise: standardise every task's inputs with its training part's statistics (off for
            family tasks, whose scale is a factor).
        test_X, test_y: the held-out test set.
        stream: later batches ``[(X, y)]`` in time order (out-of-sample scenario), may be empty.
        val_fraction, split_seed: how every data set is split into training and validation parts.
    """

    name: str
    source: ArraySource
    test_X: np.ndarray
    test_y: np.ndarray
    stream: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    val_fraction: float = 0.3
    split_seed: int = 0
    normalise: bool = True

    @property
    def task_type(self) -> str:
        return self.source.task_type

    @property
    def n_classes(self) -> int:
        return self.source.n_classes if self.task_type == CLASSIFICATION else 1

    def task(self, name: str, X: np.ndarray, y: np.ndarray) -> TaskData:
        """A task of this experiment: ``(X, y)`` split into training and validation parts."""
        return task_from_arrays(name, X, y, self.task_type, self.n_classes, self.val_fraction, self.split_seed, normalise=self.normalise)

    def full_task(self) -> TaskData:
        """The whole training set split into training and validation parts: what the baselines
        search on."""
        return self.task(f"{self.name}-full", self.source.X, self.source.y)

    def final_task(self) -> TaskData:
        """Training on the whole training set, scored on the test set (the ``val`` slot): where
        every method's chosen config is retrained."""
        X_train, X_test = standardise(self.source.X, self.test_X) if self.normalise else (self.source.X, self.test_X)
        return TaskData(f"{self.name}-final", X_train, self.source.y, X_test, self.test_y, self.task_type, self.n_classes,
                        {"n_train": len(X_train), "n_test": len(X_test), "role": "retrain on the full data, score on the test set"})


def load_experiment_data(name: str, data: dict[str, Any], test_fraction: float = 0.2, val_fraction: float = 0.3, split_seed: int = 0,
                         root: str | None = None) -> ExperimentData:
    """Build an experiment's data from its ``data`` parameters: ``{name: drift_stream | <source>,
    options: {...}}`` (see the module docstring)."""
    data = dict(data or {})
    unknown = sorted(set(data) - {"name", "options"})
    if unknown:
        raise ConfigurationError(f"experiment {name!r}: data has unknown key(s) {unknown}; it takes name and options")
    kind = data.get("name")
    options = dict(data.get("options") or {})
    if not kind:
        raise ConfigurationError(f"experiment {name!r}: data.name is missing (drift_stream or a source such as digits)")
    if not 0 < float(test_fraction) < 1:
        raise ConfigurationError(f"experiment {name!r}: test_fraction must be in (0, 1), got {test_fraction!r}")
    if kind == "drift_stream":
        offline = int(options.pop("offline_batches", 5))
        later = int(options.pop("stream_batches", 0))
        if offline < 1 or later < 0:
            raise ConfigurationError(f"experiment {name!r}: drift_stream needs offline_batches >= 1 and stream_batches >= 0")
        try:
            batches = drift_stream(n_batches=offline + later, **options)
        except TypeError as exc:
            raise ConfigurationError(f"experiment {name!r}: bad drift_stream option: {exc}") from None
        X = np.concatenate([b[0] for b in batches[:offline]])
        y = np.concatenate([b[1] for b in batches[:offline]])
        train, test = split_indices(y, test_fraction, split_seed)
        mean, std = X[train].mean(axis=0), X[train].std(axis=0)
        std[std == 0] = 1.0
        scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
        classes = [str(c) for c in range(int(y.max()) + 1)]
        source = ArraySource(name, scale(X[train]), y[train], CLASSIFICATION, classes, None, {"generator": "drift_stream", **data.get("options", {})})
        stream = [(scale(Xb), yb) for Xb, yb in batches[offline:]]
        return ExperimentData(name, source, scale(X[test]), y[test], stream, val_fraction, split_seed)
    if kind == "family":
        return _family_data(name, options, val_fraction, split_seed)
    if kind in TORCHVISION:
        train_source = load_source(kind, root=root, split="train", **options)
        test_source = load_source(kind, root=root, split="test", **{k: v for k, v in options.items() if k != "split"})
        train_source.name = name
        return ExperimentData(name, train_source, test_source.X, test_source.y, [], val_fraction, split_seed)
    full = load_source(kind, root=root, **options)
    stratify = full.task_type == CLASSIFICATION
    train, test = split_indices(full.y, test_fraction, split_seed, stratify=stratify)
    source = ArraySource(name, full.X[train], full.y[train], full.task_type, list(full.classes), full.data_range, {"source": kind, **full.options})
    return ExperimentData(name, source, full.X[test], full.y[test], [], val_fraction, split_seed)


def _family_data(name: str, options: dict[str, Any], val_fraction: float, split_seed: int) -> ExperimentData:
    """One task of a task family as an experiment's data (see the module docstring)."""
    from transfertune.data.families import build_family, spec_from_params

    family = options.pop("family", None)
    index, seed = options.pop("task", 0), options.pop("seed", 0)
    stream = {k: options.pop(k) for k in ("stream_batches", "stream_rows", "stream_drift") if k in options}
    if options:
        raise ConfigurationError(f"experiment {name!r}: data 'family' has unknown option(s) {sorted(options)}; "
                                 "it takes family, task, seed, stream_batches, stream_rows and stream_drift")
    if family is None:
        raise ConfigurationError(f"experiment {name!r}: data 'family' needs options.family (a preset name or {{preset: name, ...}})")
    if isinstance(index, bool) or int(index) != index or index < 0:
        raise ConfigurationError(f"experiment {name!r}: data.options.task must be an integer >= 0, got {index!r}")
    spec = spec_from_params(family)
    chosen = build_family(spec, n_tasks=int(index) + 1, seed=int(seed))[int(index)]
    t = chosen.task
    source = ArraySource(name, t.X_train, t.y_train, CLASSIFICATION, [str(c) for c in range(t.n_classes)], None,
                         {"family": spec.name, "task": chosen.name, "factors": dict(chosen.factors)})
    batches = _family_stream(name, spec, chosen, **stream) if stream.get("stream_batches") else []
    return ExperimentData(name, source, t.X_val, t.y_val, batches, val_fraction, split_seed, normalise=False)


def _family_stream(name: str, spec: Any, chosen: Any, stream_batches: int = 0, stream_rows: int = 1000,
                   stream_drift: dict[str, list[Any]] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Later batches of a family task (the out-of-sample scenario): ``stream_batches`` new draws of
    ``stream_rows`` signals from the MNIST-1D generator (its own templates, generator seed ``s + 1 +
    b`` for batch ``b``, ``s`` the base's seed), so new data of the task's distribution, not rows of
    its training or test part; ``stream_drift`` optionally gives generator arguments per batch (one
    list of ``stream_batches`` values per argument, e.g. ``{iid_noise_scale: [...]}``), a drift.
    Each batch is put on the task's scale: standardised with the task's training statistics, then
    multiplied by its ``input_scale`` (as the task itself)."""
    from transfertune.data.families import _NEUTRAL, GENERATOR_FACTORS, load_base

    n, rows, drift = int(stream_batches), int(stream_rows), dict(stream_drift or {})
    where = f"experiment {name!r}: data.options"
    if spec.base != "mnist1d":
        raise ConfigurationError(f"{where}.stream_batches: a family stream is drawn from the mnist1d generator; base {spec.base!r} has none")
    if n < 0 or rows < 10:
        raise ConfigurationError(f"{where}: stream_batches must be >= 0 and stream_rows >= 10, got {stream_batches!r} and {stream_rows!r}")
    generator = GENERATOR_FACTORS["mnist1d"]
    for arg, values in drift.items():
        if arg not in generator or not isinstance(values, list) or len(values) != n:
            raise ConfigurationError(f"{where}.stream_drift.{arg}: a generator argument of {list(generator)} with one value per batch ({n}), got {values!r}")
    others = {k: v for k, v in chosen.factors.items() if k not in ("n_train", "input_scale", *generator) and v != _NEUTRAL.get(k)}
    if others:
        raise ConfigurationError(f"{where}.stream_batches: the stream applies input_scale and generator arguments only; the task also has {others}")
    fixed = {k: v for k, v in chosen.factors.items() if k in generator}
    base_seed = int(dict(spec.base_options).get("seed", 42))
    raw = chosen.raw_train  # the task's training inputs times input_scale, before standardising
    scale = np.float32(chosen.factors.get("input_scale", 1.0))
    batches = []
    for b in range(n):
        options = {**dict(spec.base_options), **fixed, **{k: v[b] for k, v in drift.items()}, "num_samples": rows, "seed": base_seed + 1 + b}
        X, y, _, _ = load_base("mnist1d", options)
        _, Z = standardise(raw, X * scale)
        classes = np.asarray(chosen.task.meta.get("classes", range(int(y.max()) + 1)))
        keep = np.isin(y, classes)
        relabel = {int(c): j for j, c in enumerate(classes)}
        batches.append(((Z[keep] * scale).astype(np.float32), np.array([relabel[int(c)] for c in y[keep]], dtype=np.int64)))
    return batches
