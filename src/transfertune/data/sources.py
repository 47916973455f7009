"""Dataset sources: every dataset the project can cut subsets from, as in-memory arrays.

``load_source(name, root, download, **options)`` returns an :class:`ArraySource`:

* images: ``X`` is float32 ``N x C x H x W`` scaled to ``[0, 1]`` and ``data_range = (0, 1)``;
* tables: ``X`` is float32 ``N x F`` standardised per column (mean 0, std 1) and
  ``data_range = None`` (no a-priori box; samplers use the observed per-feature range);
* ``y`` is int64 class indices into ``classes`` for classification, float32 for regression.

Names:

* bundled with scikit-learn, always available: ``digits`` (8x8 images, 1 x 8 x 8),
  ``breast_cancer``, ``wine`` (classification tables) and ``diabetes`` (regression table);
* torchvision sets read from ``root`` (default ``data/01_raw/torchvision``): ``mnist``,
  ``fashion_mnist``, ``cifar10``, ``cifar100``, ``svhn``, ``stl10``; files are fetched only when
  ``download=True``. CIFAR is read from the official *binary* archives (fixed-length records), never
  from the pickled "python version" that torchvision's own CIFAR classes unpickle;
* ``image_folder`` (options ``path``, ``image_size``, ``grayscale``): one sub-folder per class;
* ``table`` (options ``path``, ``label_column``, ``task_type``): a CSV or Parquet file.

Common options: ``split`` (torchvision sets, ``"train"`` by default) and ``limit`` (keep the first
``limit`` samples, for quick runs on large sets).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from transfertune.errors import ConfigurationError, DataValidationError

TaskType = Literal["classification", "regression"]

DEFAULT_TORCHVISION_ROOT = Path("data/01_raw/torchvision")
BUNDLED = ("digits", "breast_cancer", "wine", "diabetes")
TORCHVISION = ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10")
FILE_SOURCES = ("image_folder", "table")
SOURCE_NAMES = BUNDLED + TORCHVISION + FILE_SOURCES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class ArraySource:
    """A whole dataset held in memory.

    Attributes:
        name: the source's name as passed to :func:`load_source` (``"digits"``, ``"table"``...).
        X: float32, ``N x C x H x W`` in ``[0, 1]`` for images, ``N x F`` standardised for tables.
        y: shape ``(N,)``; int64 class indices into ``classes`` (classification) or float32
            targets (regression).
        task_type: ``"classification"`` or ``"regression"``.
        classes: class names, ``classes[y[i]]`` is sample ``i``'s class; empty for regression.
        data_range: the scalar box every feature lives in (``(0, 1)`` for images), or ``None``
            when there is none a priori (standardised tables).
        options: the options the source was loaded with (path, split, limit...), JSON-friendly.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    task_type: TaskType
    classes: list = field(default_factory=list)
    data_range: tuple[float, float] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in ("classification", "regression"):
            raise ConfigurationError(
                f"source {self.name!r}: task_type must be 'classification' or 'regression', got {self.task_type!r}"
            )
        if len(self.X) == 0:
            raise DataValidationError(f"source {self.name!r} is empty: it has no samples to subsample from")
        if len(self.X) != len(self.y):
            raise DataValidationError(f"source {self.name!r}: X has {len(self.X)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` for images, ``(F,)`` for tables."""
        return tuple(int(s) for s in self.X.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.X.ndim == 4

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def load_source(name: str, root: str | os.PathLike | None = None, download: bool = False, **options: Any) -> ArraySource:
    """Load a dataset by name (see the module docstring for names and options).

    Args:
        name: one of :data:`SOURCE_NAMES`.
        root: folder of the torchvision sets (default ``data/01_raw/torchvision``); ignored by the
            bundled sets.
        download: fetch missing torchvision files from the internet; off by default.
        **options: ``split``, ``limit`` and the source-specific options.

    Raises:
        ConfigurationError: unknown name or option, or torchvision files absent without download.
        DataValidationError: a file source that is empty or malformed.
    """
    options = dict(options)
    limit = options.pop("limit", None)
    if name in BUNDLED:
        _no_options(name, options)
        source = _LOADERS[name]()
    elif name in TORCHVISION:
        split = options.pop("split", "train")
        _no_options(name, options)
        source = _load_torchvision(name, Path(root) if root else DEFAULT_TORCHVISION_ROOT, download, split)
        source.options["split"] = split
    elif name == "image_folder":
        source = _load_image_folder(**_take(name, options, required=("path",), optional=("image_size", "grayscale")))
    elif name == "table":
        source = _load_table(**_take(name, options, required=("path", "label_column"), optional=("task_type",)))
    else:
        raise ConfigurationError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    if limit is not None:
        source = _limit(source, limit)
    return source


# ---------------------------------------------------------------------------------- helpers
def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigurationError(f"source {name!r} takes no option(s) {sorted(options)}")


def _take(name: str, options: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    missing = [k for k in required if options.get(k) in (None, "")]
    if missing:
        raise ConfigurationError(f"source {name!r} needs the option(s) {missing} (set them under source_options)")
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        raise ConfigurationError(f"source {name!r} does not know the option(s) {unknown}; it takes {list(required + optional)}")
    return options


def _limit(source: ArraySource, limit: Any) -> ArraySource:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigurationError(f"source option limit must be a positive integer, got {limit!r}")
    source.X, source.y = source.X[:limit], source.y[:limit]
    source.options["limit"] = limit
    return source


def _standardise(X: np.ndarray) -> np.ndarray:
    """Columns to mean 0, std 1; constant columns only centred (dividing by 0 is meaningless)."""
    X = np.asarray(X, dtype=np.float64)
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    return ((X - mean) / std).astype(np.float32)


def _to_images(array: np.ndarray, layout: str) -> np.ndarray:
    """uint8 images in ``layout`` ("NHW", "NHWC" or "NCHW") to float32 N x C x H x W in [0, 1]."""
    array = np.asarray(array)
    if layout == "NHW":
        array = array[:, None, :, :]
    elif layout == "NHWC":
        array = array.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(array, dtype=np.float32) / np.float32(255.0)


# ---------------------------------------------------------------------------------- bundled
def _load_digits() -> ArraySource:
    from sklearn.datasets import load_digits

    d = load_digits()
    # pixel intensities are 0..16 in the bundled set
    X = (d.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    return ArraySource("digits", X, d.target.astype(np.int64), "classification", [int(c) for c in d.target_names], (0.0, 1.0))


def _bundled_table(name: str, loader: Callable[[], Any], task_type: TaskType) -> ArraySource:
    d = loader()
    X = _standardise(d.data)
    if task_type == "classification":
        return ArraySource(name, X, d.target.astype(np.int64), task_type, [str(c) for c in d.target_names], None)
    return ArraySource(name, X, d.target.astype(np.float32), task_type, [], None)


def _load_breast_cancer() -> ArraySource:
    from sklearn.datasets import load_breast_cancer

    return _bundled_table("breast_cancer", load_breast_cancer, "classification")


def _load_wine() -> ArraySource:
    from sklearn.datasets import load_wine

    return _bundled_table("wine", load_wine, "classification")


def _load_diabetes() -> ArraySource:
    from sklearn.datasets import load_diabetes

    # scaled=False: we standardise ourselves, the same way as every other table
    return _bundled_table("diabetes", lambda: load_diabetes(scaled=False), "regression")


_LOADERS: dict[str, Callable[[], ArraySource]] = {
    "digits": _load_digits,
    "breast_cancer": _load_breast_cancer,
    "wine": _load_wine,
    "diabetes": _load_diabetes,
}


# ---------------------------------------------------------------------------------- torchvision
_CIFAR = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "md5": "c32a1d4ab5d03f1284b67883e8d87530",
        "folder": "cifar-10-batches-bin",
        "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test": ["test_batch.bin"],
        "names": "batches.meta.txt",
        "label_bytes": 1,
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        "md5": "03b5dce01913d631647c71ecec9e9cb8",
        "folder": "cifar-100-binary",
        "train": ["train.bin"],
        "test": ["test.bin"],
        "names": "fine_label_names.txt",
        "label_bytes": 2,  # coarse label, then fine label; we keep the fine one
    },
}
_SPLITS = {
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "svhn": ("train", "test", "extra"),
    "stl10": ("train", "test"),  # 'unlabeled' has no labels to subsample classes from
}


def _missing(name: str, root: Path, detail: str = "") -> ConfigurationError:
    return ConfigurationError(
        f"source {name!r}: its files are not in {root.resolve()}{detail}. Put them there, point the "
        f"parameter subsample.root to the folder that holds them, or set subsample.download: true "
        f"(download=True) to fetch them"
    )


def _load_torchvision(name: str, root: Path, download: bool, split: str) -> ArraySource:
    if split not in _SPLITS[name]:
        raise ConfigurationError(f"source {name!r}: split must be one of {_SPLITS[name]}, got {split!r}")
    if name in _CIFAR:
        return _load_cifar_binary(name, root, download, split)
    import torchvision.datasets as tvd

    if download:
        root.mkdir(parents=True, exist_ok=True)
    try:
        if name in ("mnist", "fashion_mnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            ds = cls(str(root), train=split == "train", download=download)
            X = _to_images(ds.data.numpy(), "NHW")
            y, classes = ds.targets.numpy(), list(ds.classes)
        elif name == "svhn":
            ds = tvd.SVHN(str(root / "svhn"), split=split, download=download)
            X, y = _to_images(ds.data, "NCHW"), np.asarray(ds.labels)
            classes = [str(i) for i in range(10)]
        else:  # stl10
            ds = tvd.STL10(str(root), split=split, download=download)
            X, y, classes = _to_images(ds.data, "NCHW"), np.asarray(ds.labels), list(ds.classes)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise _missing(name, root, f" ({exc})") from exc
    return ArraySource(name, X, y.astype(np.int64), "classification", classes, (0.0, 1.0), {})


def _load_cifar_binary(name: str, root: Path, download: bool, split: str) -> ArraySource:
    spec = _CIFAR[name]
    folder = root / spec["folder"]
    files = [folder / f for f in spec[split]]
    if not all(f.is_file() for f in files):
        if not download:
            hint = ""
            if (root / spec["folder"].replace("-bin", "-py").replace("-binary", "-python")).exists():
                hint = " (only the pickled python version is there; it is never unpickled, use the binary archive)"
            raise _missing(name, root, f"{hint}; expected {', '.join(str(f) for f in files)}")
        from torchvision.datasets.utils import check_integrity, download_url

        root.mkdir(parents=True, exist_ok=True)
        archive = root / Path(spec["url"]).name
        download_url(spec["url"], str(root), md5=spec["md5"])
        if not check_integrity(str(archive), spec["md5"]):
            raise DataValidationError(f"{archive} does not match its published MD5 {spec['md5']}; delete it and retry")
        _extract_regular_files(archive, root)
    record = spec["label_bytes"] + 3 * 32 * 32
    chunks = []
    for f in files:
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise DataValidationError(f"{f} is not a CIFAR binary file (size {raw.size} is not a multiple of {record})")
        chunks.append(raw.reshape(-1, record))
    data = np.concatenate(chunks)
    y = data[:, spec["label_bytes"] - 1].astype(np.int64)
    X = _to_images(data[:, spec["label_bytes"] :].reshape(-1, 3, 32, 32), "NCHW")
    names_file = folder / spec["names"]
    classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()] if names_file.is_file() else []
    if not classes:
        classes = [str(i) for i in range(int(y.max()) + 1)]
    return ArraySource(name, X, y, "classification", classes, (0.0, 1.0), {})


def _extract_regular_files(archive: Path, root: Path) -> None:
    """Extract only regular files that stay inside ``root`` (no links, no absolute paths)."""
    target = root.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        for m in members:
            dest = (target / m.name).resolve()
            if target not in dest.parents and dest != target:
                raise DataValidationError(f"{archive} holds a path outside its folder: {m.name}")
        tar.extractall(target, members=members, filter="data")


# ---------------------------------------------------------------------------------- files
def _load_image_folder(path: str, image_size: Any = None, grayscale: bool = False) -> ArraySource:
    from PIL import Image

    folder = Path(path)
    if not folder.is_dir():
        raise ConfigurationError(f"image_folder: {folder} is not a folder (set source_options.path)")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    files = [(f, i) for i, d in enumerate(class_dirs) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataValidationError(
            f"image_folder: {folder} has no images; it needs one sub-folder per class holding {', '.join(IMAGE_SUFFIXES)} files"
        )
    mode = "L" if grayscale else "RGB"
    size: tuple[int, int] | None = None
    if image_size is not None:
        hw = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
            raise ConfigurationError(f"image_folder: image_size must be an int or [height, width], got {image_size!r}")
        size = (hw[1], hw[0])  # PIL takes (width, height)
    images = []
    for f, _ in files:
        with Image.open(f) as img:
            img = img.convert(mode)
            size = size or img.size  # without image_size, every image is resized to the first one's size
            images.append(np.asarray(img.resize(size) if img.size != size else img, dtype=np.uint8))
    array = np.stack(images)
    X = _to_images(array, "NHW" if grayscale else "NHWC")
    y = np.array([i for _, i in files], dtype=np.int64)
    options = {"path": str(path), "image_size": image_size, "grayscale": bool(grayscale)}
    return ArraySource("image_folder", X, y, "classification", [d.name for d in class_dirs], (0.0, 1.0), options)


def _load_table(path: str, label_column: str, task_type: str = "classification") -> ArraySource:
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"table: {file} does not exist (set source_options.path)")
    if task_type not in ("classification", "regression"):
        raise ConfigurationError(f"table: task_type must be 'classification' or 'regression', got {task_type!r}")
    if file.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(file)
    elif file.suffix.lower() in (".csv", ".txt"):
        frame = pd.read_csv(file)
    else:
        raise ConfigurationError(f"table: {file} must be a .csv or .parquet file")
    if label_column not in frame.columns:
        raise DataValidationError(
            f"table {file}: the label column {label_column!r} is missing; its columns are {list(frame.columns)} "
            f"(set source_options.label_column)"
        )
    if frame.empty:
        raise DataValidationError(f"table {file} has no rows")
    if frame[label_column].isna().any():
        row = int(np.flatnonzero(frame[label_column].isna().to_numpy())[0])
        raise DataValidationError(f"table {file}: column {label_column!r} is empty in row {row}")
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataValidationError(f"table {file} has no feature column besides {label_column!r}")
    # categorical features become one-hot columns; numeric ones are kept as they are
    features = pd.get_dummies(features, dtype=np.float64)
    if features.isna().any().any():
        col = features.columns[features.isna().any()].tolist()[0]
        row = int(np.flatnonzero(features[col].isna().to_numpy())[0])
        raise DataValidationError(f"table {file}: feature column {col!r} has a missing value in row {row}; fill or drop it")
    X = _standardise(features.to_numpy())
    options = {"path": str(path), "label_column": label_column, "task_type": task_type}
    labels = frame[label_column]
    if task_type == "regression":
        if not pd.api.types.is_numeric_dtype(labels):
            raise DataValidationError(f"table {file}: regression needs a numeric label column, {label_column!r} is {labels.dtype}")
        return ArraySource("table", X, labels.to_numpy(dtype=np.float32), "regression", [], None, options)
    classes, y = np.unique(labels.to_numpy(), return_inverse=True)
    return ArraySource("table", X, y.astype(np.int64), "classification", [c.item() if hasattr(c, "item") else c for c in classes], None, options)
