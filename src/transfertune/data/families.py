"""Task families: N related tasks drawn from one base dataset by factors that move the optimum
of a small model's hyperparameters (issue 27). Library code of the subsample stage, used by the
testbed card (:mod:`transfertune.data.testbed`), ``build_catalog`` and the live pipelines.

A :class:`FamilySpec` names a base, the factors and their levels, the model, the search space
and the full epoch budget; :func:`get_family` returns a named preset, :func:`build_family` draws
the tasks::

    spec = get_family("mnist1d_mlp")
    tasks = build_family(spec, n_tasks=None, seed=0)   # list[FamilyTask]

**Bases** (:data:`BASES`): the classification sources of :mod:`transfertune.data.sources`
(``digits`` 1x8x8 images in [0, 1]; ``wine``, ``breast_cancer`` standardised tables; torchvision
sets when their files are under ``base_options.root``), ``make_classification`` (scikit-learn's
generated tabular task; ``base_options`` are its arguments, ``random_state`` fixed per family so
every task is drawn from one problem) and ``mnist1d`` (the ``mnist1d`` package's generator run
offline from its bundled templates, signals of length 40; ``base_options`` are its arguments).

**Factors** (levels are lists; a task takes one level of each):

- ``n_train``: training examples (the validation part is ``spec.n_val`` examples drawn first,
  stratified, clean labels, the same size for every task so every task's metric has the same
  resolution); ``None`` = all that remain;
- ``n_classes``: classes per task, a class set drawn per task (labels re-indexed 0..k-1);
- ``class_imbalance``: ratio of the largest to the smallest training class, counts geometric
  in between (class order drawn per task); 1 = balanced;
- ``label_noise``: share of *training* labels set to another class (drawn uniformly);
- ``feature_noise``: SD of additive Gaussian noise on every input (train and validation), in
  units of the base's overall input SD;
- ``corruption``: ``none`` | ``occlusion`` (images: a square of ``occlusion_size`` x the side
  set to the data minimum; 1-D signals: a segment of that share; tables: that share of the
  features set to 0, their mean) | ``gaussian_noise`` (``x + N(0, corruption_std^2)``, images
  clipped to the data range);
- ``input_scale``: the standardised inputs the model sees (and ``raw_train``) are multiplied by
  it: the scale of the first layer's pre-activations, so the learning rate's optimum moves;
- the base generator's own arguments (:data:`GENERATOR_FACTORS`): for ``mnist1d``
  ``iid_noise_scale``, ``corr_noise_scale``, ``shear_scale``, ``max_translation``,
  ``scale_coeff``; for ``make_classification`` ``class_sep``, ``n_informative``, ``flip_y``,
  ``n_clusters_per_class``. A task regenerates the base with its levels (cached per combination).

Order of operations per task: generate/load the base, draw the class set, draw the validation
part, draw the training part (size, imbalance), add feature noise and corruption to both parts,
standardise with the training part's statistics, scale, flip training labels.

Design: the ``R`` factor combinations in a fixed order (``itertools.product`` over
``spec.factors`` in their order); task ``i`` takes row ``order[i mod R]`` with ``order`` a
permutation seeded by ``seed``, so every combination appears as evenly as ``n_tasks`` allows and
tasks ``i`` and ``i + R`` share their factors but not their samples (the nearest-task structure
the transfer methods exploit). Each task's draws come from ``SeedSequence([seed, 27, i])``.

Bad input (an unknown base or factor, an impossible level) raises one
:class:`~transfertune.errors.ConfigurationError` line naming it.

The second half of the module is the Siamese pipeline's image family of issue 21
(:class:`FamilyDesign`, :func:`build_design_family`), kept as it was.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transfertune.errors import ConfigurationError
from transfertune.training.trainer import TaskData

GENERATED_BASES = ("make_classification", "mnist1d")
SOURCE_BASES = ("digits", "wine", "breast_cancer", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10", "image_folder", "table")
BASES = GENERATED_BASES + SOURCE_BASES
GENERIC_FACTORS = ("n_train", "n_classes", "class_imbalance", "label_noise", "feature_noise", "corruption", "input_scale")
GENERATOR_FACTORS: dict[str, tuple[str, ...]] = {
    "mnist1d": ("iid_noise_scale", "corr_noise_scale", "shear_scale", "max_translation", "scale_coeff"),
    "make_classification": ("class_sep", "n_informative", "flip_y", "n_clusters_per_class"),
}
FAMILY_CORRUPTIONS = ("none", "occlusion", "gaussian_noise")
MAKE_CLASSIFICATION_DEFAULTS = {"n_samples": 6000, "n_features": 20, "n_informative": 8, "n_redundant": 4, "n_classes": 10,
                                "n_clusters_per_class": 2, "class_sep": 1.0, "flip_y": 0.0, "random_state": 0}
MNIST1D_DEFAULTS = {"num_samples": 6000, "seed": 42}
_NEUTRAL = {"n_train": None, "n_classes": None, "class_imbalance": 1.0, "label_noise": 0.0, "feature_noise": 0.0,
            "corruption": "none", "input_scale": 1.0}
_CODE = {"n_train": "n", "n_classes": "k", "class_imbalance": "imb", "label_noise": "ln", "feature_noise": "fn",
         "corruption": "", "input_scale": "x", "iid_noise_scale": "iid", "corr_noise_scale": "corr", "shear_scale": "sh",
         "max_translation": "tr", "scale_coeff": "sc", "class_sep": "sep", "n_informative": "inf", "flip_y": "fy",
         "n_clusters_per_class": "cl"}


@dataclass(frozen=True)
class FamilySpec:
    """A task family: base, factors, model, space and budget.

    Attributes:
        name: preset name, prefix of every task's name.
        base: one of :data:`BASES`.
        factors: factor -> list of levels (see the module docstring); the design is their product.
        n_tasks: tasks :func:`build_family` draws by default.
        model: a :data:`transfertune.training.models.MODELS` key.
        space: path of the space YAML (``conf/base/spaces/<name>.yml``), relative to the project root.
        epochs: the full budget (epochs of one full evaluation).
        fixed: model settings the space does not tune (``train_trial(fixed=...)``).
        n_val: validation examples per task (stratified, drawn before the training part).
        base_options: the base's own options (generator arguments, source options, ``root``).
        occlusion_size, corruption_std: the corruption strengths.
        description: one line: what the family is for.
    """

    name: str
    base: str
    factors: dict[str, list[Any]] = field(default_factory=dict)
    n_tasks: int = 24
    model: str = "mlp"
    space: str = "conf/base/spaces/mlp.yml"
    epochs: int = 10
    fixed: dict[str, Any] = field(default_factory=dict)
    n_val: int = 500
    base_options: dict[str, Any] = field(default_factory=dict)
    occlusion_size: float = 0.4
    corruption_std: float = 0.35
    description: str = ""

    def design(self) -> list[dict[str, Any]]:
        """Every factor combination as ``{factor: level}``, in the fixed product order."""
        names = list(self.factors)
        return [dict(zip(names, combo)) for combo in itertools.product(*[list(self.factors[n]) for n in names])]

    def replace(self, **changes: Any) -> "FamilySpec":
        """A copy with ``changes`` (unknown field names raise one line)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigurationError(f"family {self.name!r}: unknown field(s) {unknown}; known: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FamilyTask:
    """One task of a family.

    Attributes:
        name: unique in the family, e.g. ``mnist1d_mlp-s0-007-n400-ln20``.
        task: split, standardised (and scaled) arrays the target model trains on; label noise on
            ``y_train`` only.
        factors: factor -> level of this task (every factor of the spec).
        raw_train: the unstandardised training inputs (after noise, corruption and scale):
            ``(N_train, C, H, W)`` images, ``(N_train, L)`` signals or ``(N_train, F)`` rows;
            what a meta-feature network and hand-crafted statistics see.
        index: position in the family; ``design_row``: index of its factor combination.
    """

    name: str
    task: TaskData
    factors: dict[str, Any]
    raw_train: np.ndarray
    index: int = 0
    design_row: int = 0

    @property
    def labels(self) -> np.ndarray:
        """``(N_train,)`` training labels (noisy where flipped)."""
        return self.task.y_train


# ---------------------------------------------------------------------- presets

PRESETS: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    check_spec(spec)
    PRESETS[spec.name] = spec
    return spec


def family_names() -> list[str]:
    """Names of the presets, sorted."""
    return sorted(PRESETS)


def get_family(name: str) -> FamilySpec:
    """The preset ``name``."""
    if name not in PRESETS:
        raise ConfigurationError(f"unknown task family {name!r}; choose one of {family_names()}")
    return PRESETS[name]


def spec_from_params(params: Mapping[str, Any] | str) -> FamilySpec:
    """A spec from a preset name, or from ``{preset: name, <field>: value, ...}`` (fields override
    the preset's), or from every field (``name`` and ``base`` required) without ``preset``."""
    if isinstance(params, str):
        return get_family(params)
    params = dict(params)
    preset = params.pop("preset", None)
    if preset is not None:
        spec = get_family(str(preset)).replace(**params)
    else:
        known = {f.name for f in dataclasses.fields(FamilySpec)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigurationError(f"family: unknown field(s) {unknown}; known: {sorted(known | {'preset'})}")
        if "name" not in params or "base" not in params:
            raise ConfigurationError("family: give a preset (family.preset) or both name and base")
        spec = FamilySpec(**params)
    check_spec(spec)
    return spec


# ---------------------------------------------------------------------- checks


def check_spec(spec: FamilySpec) -> None:
    """One :class:`ConfigurationError` line for the first problem of ``spec``."""
    where = f"family {spec.name!r}"
    if spec.base not in BASES:
        raise ConfigurationError(f"{where}: unknown base {spec.base!r}; choose one of {list(BASES)}")
    known = GENERIC_FACTORS + GENERATOR_FACTORS.get(spec.base, ())
    for factor, levels in spec.factors.items():
        if factor not in known:
            raise ConfigurationError(f"{where}: unknown factor {factor!r} for base {spec.base!r}; known: {list(known)}")
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) == 0:
            raise ConfigurationError(f"{where}: factor {factor!r} needs a non-empty list of levels, got {levels!r}")
        for level in levels:
            problem = _level_problem(factor, level)
            if problem:
                raise ConfigurationError(f"{where}: impossible level {level!r} of factor {factor!r}: {problem}")
    if isinstance(spec.n_tasks, bool) or not isinstance(spec.n_tasks, (int, np.integer)) or spec.n_tasks < 1:
        raise ConfigurationError(f"{where}: n_tasks must be an integer >= 1, got {spec.n_tasks!r}")
    if isinstance(spec.epochs, bool) or not isinstance(spec.epochs, (int, np.integer)) or spec.epochs < 1:
        raise ConfigurationError(f"{where}: epochs must be an integer >= 1, got {spec.epochs!r}")
    if isinstance(spec.n_val, bool) or not isinstance(spec.n_val, (int, np.integer)) or spec.n_val < 2:
        raise ConfigurationError(f"{where}: n_val must be an integer >= 2, got {spec.n_val!r}")
    if not 0.0 < float(spec.occlusion_size) < 1.0:
        raise ConfigurationError(f"{where}: occlusion_size must be in (0, 1), got {spec.occlusion_size!r}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _level_problem(factor: str, level: Any) -> str:
    """Why ``level`` is impossible for ``factor`` ("" when it is fine), before any data is seen."""
    if factor == "corruption":
        return "" if level in FAMILY_CORRUPTIONS else f"choose one of {list(FAMILY_CORRUPTIONS)}"
    if factor in ("n_train", "n_classes") and level is None:
        return ""
    if not _is_number(level) or not np.isfinite(float(level)):
        return "not a number"
    x = float(level)
    checks = {
        "n_train": (x >= 2 and x == int(x), "an integer >= 2"),
        "n_classes": (x >= 2 and x == int(x), "an integer >= 2"),
        "class_imbalance": (x >= 1, ">= 1 (largest / smallest class)"),
        "label_noise": (0 <= x < 1, "a share in [0, 1)"),
        "feature_noise": (x >= 0, ">= 0"),
        "input_scale": (x > 0, "> 0"),
        "iid_noise_scale": (x >= 0, ">= 0"),
        "corr_noise_scale": (x >= 0, ">= 0"),
        "shear_scale": (x >= 0, ">= 0"),
        "max_translation": (x >= 1 and x == int(x), "an integer >= 1"),
        "scale_coeff": (0 <= x < 2, "in [0, 2)"),
        "class_sep": (x > 0, "> 0"),
        "n_informative": (x >= 1 and x == int(x), "an integer >= 1"),
        "flip_y": (0 <= x < 1, "a share in [0, 1)"),
        "n_clusters_per_class": (x >= 1 and x == int(x), "an integer >= 1"),
    }
    ok, need = checks[factor]
    return "" if ok else f"must be {need}"


# ---------------------------------------------------------------------- bases


def _generate_mnist1d(options: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D from the package's bundled templates (no download): ``(N, 40)`` float32 signals
    (train and test parts of the package's split pooled), int64 labels 0..9. The generator uses
    numpy's global RNG; its state is restored afterwards."""
    from mnist1d.data import get_dataset_args, make_dataset
    from mnist1d.utils import ObjectView

    args = get_dataset_args(as_dict=True)
    unknown = sorted(set(options) - set(args) - {"root"})
    if unknown:
        raise ConfigurationError(f"mnist1d base: unknown generator argument(s) {unknown}; known: {sorted(set(args) - {'url'})}")
    args.update({k: v for k, v in options.items() if k != "root"})
    args["num_samples"] = int(args["num_samples"])
    args["max_translation"] = int(args["max_translation"])
    state = np.random.get_state()
    try:
        data = make_dataset(ObjectView(args))
    finally:
        np.random.set_state(state)
    X = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return X, y


def _generate_make_classification(options: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    kwargs = {**MAKE_CLASSIFICATION_DEFAULTS, **{k: v for k, v in options.items() if k != "root"}}
    for key in ("n_samples", "n_features", "n_informative", "n_redundant", "n_classes", "n_clusters_per_class", "random_state"):
        kwargs[key] = int(kwargs[key])
    try:
        X, y = make_classification(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"make_classification base: {exc}") from None
    return X.astype(np.float32), y.astype(np.int64)


_BASE_CACHE: dict[str, tuple[np.ndarray, np.ndarray, float, tuple[float, float] | None]] = {}


def load_base(base: str, options: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float] | None]:
    """``(X, y, sd, data_range)`` of a base with ``options`` (cached per base and options):
    inputs as the base gives them, int64 labels, the inputs' overall SD (the unit of
    ``feature_noise``) and the box images are clipped to (``None`` for signals and tables)."""
    key = json.dumps([base, dict(options)], sort_keys=True, default=str)
    if key not in _BASE_CACHE:
        data_range: tuple[float, float] | None = None
        if base == "mnist1d":
            X, y = _generate_mnist1d(options)
        elif base == "make_classification":
            X, y = _generate_make_classification(options)
        elif base in SOURCE_BASES:
            from transfertune.data import load_source

            opts = {k: v for k, v in options.items() if k != "root"}
            source = load_source(base, root=options.get("root"), download=False, **opts)
            if source.task_type != "classification":
                raise ConfigurationError(f"family base {base!r} is a regression source; families need classification")
            X, y, data_range = source.X, source.y, source.data_range
        else:
            raise ConfigurationError(f"unknown family base {base!r}; choose one of {list(BASES)}")
        _BASE_CACHE[key] = (X, y, float(np.std(X)) or 1.0, data_range)
    return _BASE_CACHE[key]


# ---------------------------------------------------------------------- drawing tasks


def task_levels(spec: FamilySpec, n_tasks: int, seed: int) -> list[tuple[int, dict[str, Any]]]:
    """``(design row, levels)`` of tasks ``0..n_tasks-1`` (see the module docstring)."""
    rows = spec.design()
    order = np.random.default_rng([int(seed), 27]).permutation(len(rows))
    return [(int(order[i % len(rows)]), rows[order[i % len(rows)]]) for i in range(int(n_tasks))]


def task_name(spec: FamilySpec, seed: int, i: int, levels: Mapping[str, Any]) -> str:
    parts = [f"{spec.name}-s{int(seed)}-{i:03d}"]
    for factor, level in levels.items():
        if len(spec.factors.get(factor, ())) < 2:
            continue  # a factor with one level does not tell tasks apart
        if factor == "corruption":
            parts.append({"none": "clean", "occlusion": "occl", "gaussian_noise": "gauss"}[level])
        elif factor in ("label_noise", "flip_y"):
            parts.append(f"{_CODE[factor]}{round(100 * float(level)):02d}")
        elif level is None:
            parts.append(f"{_CODE[factor]}all")
        else:
            parts.append(f"{_CODE[factor]}{float(level):g}")
    return "-".join(parts)


def build_family(spec: FamilySpec, n_tasks: int | None = None, seed: int = 0) -> list[FamilyTask]:
    """The tasks of ``spec``: ``n_tasks`` (None: ``spec.n_tasks``) drawn with ``seed``.

    Raises:
        ConfigurationError: unknown base or factor, impossible level (also one found only on the
            data: more classes or examples than the base has), one line naming it.
    """
    check_spec(spec)
    n = int(spec.n_tasks if n_tasks is None else n_tasks)
    if n < 1:
        raise ConfigurationError(f"family {spec.name!r}: n_tasks must be >= 1, got {n_tasks!r}")
    out = []
    for i, (row, given) in enumerate(task_levels(spec, n, seed)):
        levels = {**_NEUTRAL, **given}
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 27, i]))
        generator_args = {k: given[k] for k in GENERATOR_FACTORS.get(spec.base, ()) if k in given}
        X, y, sd, data_range = load_base(spec.base, {**dict(spec.base_options), **generator_args})
        name = task_name(spec, seed, i, given)
        task, raw_train, info = _draw_task(spec, name, X, y, sd, data_range, levels, rng)
        task.meta.update({"task": name, "family": spec.name, "base": spec.base, "seed": int(seed), "index": i,
                          "factors": {k: given[k] for k in given}, **info})
        out.append(FamilyTask(name, task, dict(given), raw_train, i, row))
    return out


def _draw_task(spec: FamilySpec, name: str, X: np.ndarray, y: np.ndarray, sd: float, data_range: tuple[float, float] | None,
               levels: Mapping[str, Any], rng: np.random.Generator) -> tuple[TaskData, np.ndarray, dict[str, Any]]:
    from transfertune.training.tasks import standardise

    where = f"family {spec.name!r}, task {name}"
    classes_all = np.unique(y)
    k = len(classes_all) if levels["n_classes"] is None else int(levels["n_classes"])
    if k > len(classes_all):
        raise ConfigurationError(f"{where}: impossible level {k} of factor 'n_classes': base {spec.base!r} has {len(classes_all)} classes")
    classes = np.sort(rng.choice(classes_all, size=k, replace=False))
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    # validation: n_val split as evenly as the classes allow, drawn first
    val_counts = np.full(k, spec.n_val // k) + (np.arange(k) < spec.n_val % k)
    short = [int(c) for c, p, v in zip(classes, pools, val_counts) if len(p) <= v]
    if short:
        raise ConfigurationError(f"{where}: n_val {spec.n_val} leaves no training example of class(es) {short} of base {spec.base!r}; lower n_val")
    val_idx = np.concatenate([p[:v] for p, v in zip(pools, val_counts)])
    rest = [p[v:] for p, v in zip(pools, val_counts)]
    # training: sizes geometric from 1 down to 1 / imbalance over a random class order
    imbalance = float(levels["class_imbalance"])
    weights = imbalance ** (-rng.permutation(k) / max(k - 1, 1))
    n_train = levels["n_train"]
    if n_train is None:
        # the largest t with t * w_c <= available_c for every class (all that remain, balanced or not)
        counts = np.floor(min(len(r) / w for r, w in zip(rest, weights)) * weights).astype(int)
    else:
        n_train = int(n_train)
        if n_train < k:
            raise ConfigurationError(f"{where}: impossible level {n_train} of factor 'n_train': fewer than its {k} classes")
        counts = _apportion(n_train, weights)
    over = [(int(c), int(n), len(r)) for c, n, r in zip(classes, counts, rest) if n > len(r)]
    if over:
        c, want, have = over[0]
        raise ConfigurationError(
            f"{where}: impossible level {levels['n_train']} of factor 'n_train' (class_imbalance {imbalance:g}): class {c} needs {want} "
            f"training examples, base {spec.base!r} has {have} left after n_val {spec.n_val}")
    train_idx = np.concatenate([r[:n] for r, n in zip(rest, np.maximum(counts, 1))])
    relabel = {int(c): j for j, c in enumerate(classes)}
    X_train, X_val = np.array(X[train_idx], dtype=np.float32), np.array(X[val_idx], dtype=np.float32)
    y_train = np.array([relabel[int(c)] for c in y[train_idx]], dtype=np.int64)
    y_val = np.array([relabel[int(c)] for c in y[val_idx]], dtype=np.int64)
    # noise and corruption: a property of the task's input distribution, so both parts
    for part in (X_train, X_val):
        _corrupt_inplace(part, float(levels["feature_noise"]) * sd, "gaussian_noise", rng, spec, data_range)
        _corrupt_inplace(part, spec.corruption_std, str(levels["corruption"]), rng, spec, data_range)
    scale = float(levels["input_scale"])
    Z_train, Z_val = standardise(X_train, X_val) if X_train.ndim in (2, 4) else _standardise_any(X_train, X_val)
    y_train = flip_labels(y_train, float(levels["label_noise"]), k, rng)
    info = {"classes": [int(c) for c in classes], "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
            "input_shape": list(X.shape[1:]), "n_classes": k, "task_type": "classification"}
    task = TaskData(name, Z_train * np.float32(scale), y_train, Z_val * np.float32(scale), y_val, "classification", k, dict(info))
    return task, X_train * np.float32(scale), info


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers >= 1 proportional to ``weights`` that sum to ``total`` (largest remainders)."""
    share = weights / weights.sum() * total
    counts = np.maximum(np.floor(share).astype(int), 1)
    while counts.sum() < total:
        counts[np.argmax(share - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(np.where(counts > 1, counts - share, -np.inf))] -= 1
    return counts


def _standardise_any(X_train: np.ndarray, X_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature z-scores for inputs of any rank (flattened features)."""
    from transfertune.training.tasks import standardise

    a, b = standardise(X_train.reshape(len(X_train), -1), X_val.reshape(len(X_val), -1))
    return a.reshape(X_train.shape), b.reshape(X_val.shape)


def _corrupt_inplace(X: np.ndarray, std: float, kind: str, rng: np.random.Generator, spec: FamilySpec,
                     data_range: tuple[float, float] | None) -> None:
    """Apply one corruption to ``X`` (images ``(N, C, H, W)``, signals ``(N, L)`` or rows ``(N, F)``)."""
    if kind == "none" or (kind == "gaussian_noise" and std == 0):
        return
    if kind == "gaussian_noise":
        X += rng.normal(0.0, std, X.shape).astype(np.float32)
        if data_range is not None:
            np.clip(X, data_range[0], data_range[1], out=X)
        return
    if kind != "occlusion":
        raise ConfigurationError(f"unknown corruption {kind!r}; choose one of {list(FAMILY_CORRUPTIONS)}")
    low = data_range[0] if data_range is not None else 0.0
    if X.ndim == 4:
        X[:] = corrupt(X, "occlusion", rng, size=spec.occlusion_size, data_range=data_range or (float(X.min()), float(X.max())))
    elif _is_signal(spec):
        L = X.shape[1]
        w = max(1, round(spec.occlusion_size * L))
        for i, s in enumerate(rng.integers(0, L - w + 1, len(X))):
            X[i, s : s + w] = low
    else:
        F_ = X.reshape(len(X), -1)
        m = max(1, round(spec.occlusion_size * F_.shape[1]))
        for i in range(len(F_)):
            F_[i, rng.choice(F_.shape[1], m, replace=False)] = low


def _is_signal(spec: FamilySpec) -> bool:
    return spec.base == "mnist1d"


# ---------------------------------------------------------------------- Siamese image family (issue 21)
# A family of image datasets whose best hyperparameters differ (issue 21, item 6).
#
# Seed 000 (section 4) learns meta-features over 80 class subsets of four image sources. A learned
# distance can only help BO if the datasets' hyperparameter -> accuracy mappings differ, and class
# subsets of one source alone differ little. So every member is a class subset of the subsample
# stage (:func:`transfertune.data.samplers.class_subsets`, distinct class sets) with three factors
# drawn from a factorial design:
#
# - **size**: ``n_per_class`` examples of each class (fewer examples: fewer SGD steps per epoch, so
#   a small learning rate or a large batch underfits);
# - **label noise**: a fraction of the *training* labels replaced by a uniformly drawn class
#   (validation labels stay clean, so the validation accuracy measures what the model learned
#   despite the noise; the optimum moves towards fewer effective steps);
# - **input corruption**: ``none``, ``gaussian_noise`` (``x + N(0, std^2)``, clipped to the data
#   range) or ``occlusion`` (a square of ``size`` x the image side set to 0 at a random place in
#   each image), applied to every image of the member before the split.
#
# Member ``i`` takes design row ``order[i mod R]`` of the ``R`` factor combinations (``order`` a
# seeded permutation), so every combination appears as evenly as the member count allows.
#
# A member is a :class:`FamilyDataset`: the train-stage :class:`~transfertune.training.trainer.TaskData`
# (split, standardised, noisy training labels) that the catalog and the live BO train on, and the
# unstandardised training images in the data range, which the Siamese network and the hand-crafted
# meta-features see (the paper's wing reads images only).

CORRUPTIONS = ("none", "gaussian_noise", "occlusion")
_CODES = {"none": "clean", "gaussian_noise": "gauss", "occlusion": "occl"}


@dataclass
class FamilyDataset:
    """One member of the family.

    Attributes:
        name: unique task name, e.g. ``digits-cls-s0-004-n80-ln30-gauss``.
        task: the split, standardised arrays the target model trains on (label noise applied to
            ``y_train`` only).
        images: ``(N_train, C, H, W)`` float32 training images in the source's data range
            (corrupted, not standardised): the Siamese network's and the statistics' input.
        spec: source, class subset id, classes, ``n_per_class``, ``label_noise``, ``corruption``.
    """

    name: str
    task: TaskData
    images: np.ndarray
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """``(N_train,)`` training labels as the dataset holds them (noisy where flipped)."""
        return self.task.y_train

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]


def corrupt(images: np.ndarray, kind: str, rng: np.random.Generator, std: float = 0.35, size: float = 0.5,
            data_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """A corrupted copy of ``images`` ``(N, C, H, W)``.

    ``gaussian_noise``: ``clip(x + N(0, std^2), lo, hi)`` element-wise. ``occlusion``: in each image
    a ``round(size * H) x round(size * W)`` square at a uniform position is set to ``lo`` (all
    channels). ``none``: a copy.
    """
    out = np.array(images, dtype=np.float32, copy=True)
    lo, hi = data_range
    if kind == "none":
        return out
    if kind == "gaussian_noise":
        return np.clip(out + rng.normal(0.0, std, out.shape).astype(np.float32), lo, hi)
    if kind == "occlusion":
        _, _, H, W = out.shape
        h, w = max(1, round(size * H)), max(1, round(size * W))
        rows = rng.integers(0, H - h + 1, len(out))
        cols = rng.integers(0, W - w + 1, len(out))
        for i, (r, c) in enumerate(zip(rows, cols)):
            out[i, :, r : r + h, c : c + w] = lo
        return out
    raise ConfigurationError(f"unknown corruption {kind!r}; choose one of {CORRUPTIONS}")


def flip_labels(y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``y`` with ``round(fraction * N)`` labels (chosen without replacement) set to another class,
    drawn uniformly among the ``n_classes - 1`` others, so exactly that share is wrong."""
    y = np.array(y, dtype=np.int64, copy=True)
    n_flip = int(round(float(fraction) * len(y)))
    if n_flip == 0:
        return y
    idx = rng.choice(len(y), size=n_flip, replace=False)
    shift = rng.integers(1, n_classes, size=n_flip)
    y[idx] = (y[idx] + shift) % n_classes
    return y


@dataclass
class FamilyDesign:
    """The factor levels and how many members to draw from one source.

    Attributes:
        source: a classification image source of :mod:`transfertune.data.sources`.
        source_options: its options (``split``, ``limit``, ...).
        n_datasets: members (each a distinct class set).
        n_classes: classes per member.
        sizes: ``n_per_class`` levels.
        label_noise: fractions of flipped training labels.
        corruptions: corruption kinds (of :data:`CORRUPTIONS`).
        noise_std, occlusion_size: the corruption strengths.
        seed: class sets, design order, sizes, corruptions and flips.
        tag: name prefix (default: the source name).
    """

    source: str = "digits"
    source_options: dict[str, Any] = field(default_factory=dict)
    n_datasets: int = 36
    n_classes: int = 5
    sizes: Sequence[int] = (30, 80, 170)
    label_noise: Sequence[float] = (0.0, 0.3)
    corruptions: Sequence[str] = CORRUPTIONS
    noise_std: float = 0.35
    occlusion_size: float = 0.5
    seed: int = 0
    tag: str | None = None

    def rows(self) -> list[tuple[int, float, str]]:
        """Every (size, label noise, corruption) combination, in a fixed order."""
        return list(itertools.product([int(s) for s in self.sizes], [float(f) for f in self.label_noise], list(self.corruptions)))

    def check(self) -> None:
        bad = [c for c in self.corruptions if c not in CORRUPTIONS]
        if bad:
            raise ConfigurationError(f"family corruptions {bad} are unknown; choose among {CORRUPTIONS}")
        if not self.sizes or min(int(s) for s in self.sizes) < 2:
            raise ConfigurationError(f"family sizes must be integers >= 2 (examples per class), got {list(self.sizes)}")
        if not self.label_noise or not all(0.0 <= float(f) < 1.0 for f in self.label_noise):
            raise ConfigurationError(f"family label_noise fractions must be in [0, 1), got {list(self.label_noise)}")
        if not self.corruptions:
            raise ConfigurationError("family corruptions must name at least one kind (none for clean images)")
        if int(self.n_datasets) < 1:
            raise ConfigurationError(f"family n_datasets must be >= 1, got {self.n_datasets}")


def build_design_family(design: FamilyDesign, root: str | None = None, val_fraction: float = 0.3, split_seed: int = 0) -> list[FamilyDataset]:
    """The members of one source (see the module docstring).

    Raises:
        ConfigurationError: a table or regression source, a size larger than the smallest drawn
            class, an unknown corruption; a torchvision source whose files are not under ``root``
            (one line naming the folder; nothing is downloaded).
    """
    from transfertune.data import load_source, materialise
    from transfertune.data.samplers import class_subsets
    from transfertune.training.tasks import task_from_arrays

    design.check()
    try:
        source = load_source(design.source, root=root, download=False, **dict(design.source_options))
    except ConfigurationError as exc:  # the loader's hint names the subsample stage's parameters
        raise ConfigurationError(f"family source {design.source!r}: {exc} (siamese pipeline: set siamese.family.root; nothing is downloaded)") from None
    tag = design.tag or design.source
    if not source.is_image or source.task_type != "classification":
        raise ConfigurationError(f"family source {design.source!r} must be an image classification set; it has samples of shape {source.sample_shape}")
    manifests = class_subsets(source, int(design.n_datasets), int(design.n_classes), None, int(design.seed), tag=tag)
    rows = design.rows()
    rng = np.random.default_rng([int(design.seed), 21])
    order = rng.permutation(len(rows))
    children = np.random.SeedSequence([int(design.seed), 2100]).spawn(len(manifests))
    lo_hi = source.data_range or (float(source.X.min()), float(source.X.max()))
    members = []
    for i, manifest in enumerate(manifests):
        size, noise, kind = rows[order[i % len(rows)]]
        member_rng = np.random.default_rng(children[i])
        subset = materialise(manifest, source)
        counts = np.bincount(subset.y, minlength=len(subset.classes))
        if size > counts.min():
            raise ConfigurationError(
                f"family: dataset {manifest.subset_id} has {int(counts.min())} examples in its smallest class, fewer than size {size}; "
                f"lower family sizes (the largest is {max(design.sizes)})"
            )
        keep = np.sort(np.concatenate([member_rng.choice(np.flatnonzero(subset.y == c), size, replace=False) for c in range(len(subset.classes))]))
        images = corrupt(subset.X[keep], kind, member_rng, design.noise_std, design.occlusion_size, lo_hi)
        labels = subset.y[keep]
        name = f"{manifest.subset_id}-n{size}-ln{round(100 * noise):02d}-{_CODES[kind]}"
        spec = {"source": design.source, "subset_id": manifest.subset_id, "classes": list(manifest.classes or []),
                "n_per_class": size, "label_noise": noise, "corruption": kind}
        task = task_from_arrays(name, images, labels, "classification", len(subset.classes), val_fraction, split_seed, True, {"task": name, **spec})
        raw_train = images[_train_positions(labels, val_fraction, split_seed)]
        task.y_train = flip_labels(task.y_train, noise, task.n_classes, member_rng)
        members.append(FamilyDataset(name, task, raw_train, spec))
    return members


def _train_positions(labels: np.ndarray, val_fraction: float, split_seed: int) -> np.ndarray:
    """The rows :func:`~transfertune.training.tasks.task_from_arrays` puts in the training part."""
    from transfertune.training.tasks import split_indices

    return split_indices(labels, val_fraction, split_seed, stratify=True)[0]


def split_family(members: Sequence[FamilyDataset], n_heldout: int, seed: int) -> tuple[list[FamilyDataset], list[FamilyDataset]]:
    """``(training, held_out)``: ``n_heldout`` members drawn at random (seeded) are held out of
    meta-feature learning; both keep the family's order."""
    n = len(members)
    if not 1 <= int(n_heldout) <= n - 2:
        raise ConfigurationError(f"n_heldout must be in 1..{n - 2} (at least two training datasets form a pair), got {n_heldout}")
    held = set(np.random.default_rng([int(seed), 22]).choice(n, size=int(n_heldout), replace=False).tolist())
    return [m for i, m in enumerate(members) if i not in held], [m for i, m in enumerate(members) if i in held]


def family_table(members: Sequence[FamilyDataset], held_out: Sequence[str] = ()) -> "Any":
    """One row per member: name, role, factors, sizes, image shape (a pandas DataFrame)."""
    import pandas as pd

    held = set(held_out)
    return pd.DataFrame(
        [{"dataset": m.name, "role": "held_out" if m.name in held else "train", "source": m.spec.get("source"),
          "classes": " ".join(str(c) for c in m.spec.get("classes", [])), "n_per_class": m.spec.get("n_per_class"),
          "label_noise": m.spec.get("label_noise"), "corruption": m.spec.get("corruption"), "n_train": len(m.task.y_train),
          "n_val": len(m.task.y_val), "image_shape": "x".join(str(s) for s in m.image_shape)} for m in members]
    )


def designs_from(params: Sequence[Mapping[str, Any]]) -> list[FamilyDesign]:
    """:class:`FamilyDesign` s from plain mappings (one per source)."""
    out = []
    for entry in params:
        known = set(FamilyDesign.__dataclass_fields__)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ConfigurationError(f"family source entry: unknown key(s) {unknown}; known: {sorted(known)}")
        out.append(FamilyDesign(**dict(entry)))
    return out


# ---------------------------------------------------------------------- presets (docs/testbeds.md has each one's card)

_SGD_SPACE = "conf/base/spaces/mlp_sgd.yml"

register(FamilySpec(
    name="mnist1d_scale",
    base="mnist1d",
    factors={"input_scale": [0.03, 0.3, 3.0, 30.0], "n_train": [4000]},
    n_tasks=32, model="mlp_sgd", space="conf/base/spaces/mlp_sgd_wide.yml", epochs=10, n_val=2000, base_options={"num_samples": 8000},
    description="MNIST-1D signals at four input scales, MLP with SGD: passes the testbed card (docs/testbeds.md); the live pipelines' default",
))
register(FamilySpec(
    name="mnist1d_mlp",
    base="mnist1d",
    factors={"n_train": [250, 1000], "input_scale": [0.1, 1.0, 10.0], "label_noise": [0.0, 0.3], "iid_noise_scale": [0.02, 0.2]},
    n_tasks=48, model="mlp_sgd", space=_SGD_SPACE, epochs=10, n_val=500, base_options={"num_samples": 4000},
    description="MNIST-1D signals, factors visible in the raw inputs (Siamese)",
))
register(FamilySpec(
    name="tabular_mlp",
    base="make_classification",
    factors={"n_train": [200, 800], "input_scale": [0.25, 1.0, 4.0], "label_noise": [0.0, 0.3]},
    n_tasks=36, model="mlp_sgd", space=_SGD_SPACE, epochs=10, n_val=1000,
    base_options={"n_samples": 10000, "n_features": 20, "n_informative": 10, "n_redundant": 2, "n_classes": 5},
    description="generated tabular task (make_classification), MLP with SGD: the bundled database, Meta-HPO",
))
register(FamilySpec(
    name="digits_mlp",
    base="digits",
    factors={"n_train": [200, 600], "input_scale": [0.25, 1.0, 4.0], "label_noise": [0.0, 0.3]},
    n_tasks=30, model="mlp_sgd", space=_SGD_SPACE, epochs=6, n_val=400,
    description="sklearn digits (1x8x8 images), MLP with SGD: the bundled database, Siamese, HTS pairs, tune",
))
register(FamilySpec(
    name="mnist1d_cnn",
    base="mnist1d",
    factors={"n_train": [150, 600], "input_scale": [0.1, 1.0, 10.0], "label_noise": [0.0, 0.3]},
    n_tasks=24, model="cnn1d", space="conf/base/spaces/cnn1d.yml", epochs=10, n_val=500, base_options={"num_samples": 4000},
    description="MNIST-1D signals, 1-D CNN",
))
