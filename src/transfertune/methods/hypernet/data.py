"""Train / validation / test splits for the hyper-training experiments.

``digits`` (scikit-learn's bundled 8x8 digits, 64 features, 10 classes) needs no download and is
the default. ``mnist`` (784 features, the paper's 7,850-weight logistic regression) is read
through torchvision from a local root only; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from transfertune.errors import ConfigurationError, TransfertuneError

DATASETS = ("digits", "mnist")


class DatasetNotFoundError(TransfertuneError):
    """A dataset that must be present locally is missing."""


@dataclass(frozen=True)
class DataSplit:
    """Features ``x_* (N_*, F)`` float32 in [0, 1] and labels ``y_* (N_*,)`` long."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int
    name: str

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: torch.device | str) -> "DataSplit":
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return DataSplit(**moved, n_classes=self.n_classes, name=self.name)

    def sizes(self) -> dict[str, int]:
        return {"n_train": len(self.y_train), "n_val": len(self.y_val), "n_test": len(self.y_test)}


def load_split(
    dataset: str = "digits",
    n_train: int = 50,
    n_val: int = 200,
    n_test: int | None = None,
    seed: int = 0,
    mnist_root: str | Path = "data/01_raw/torchvision",
) -> DataSplit:
    """Stratified random split; ``n_test=None`` keeps every remaining example for the test set.

    Pixels are divided by their known maximum (16 for digits, 255 for MNIST) rather than
    standardised with statistics of a split, so no split leaks into another.
    """
    if dataset not in DATASETS:
        raise ConfigurationError(f"hypernet data.dataset={dataset!r} is unknown; use one of {DATASETS}")
    if n_train < 10 or n_val < 10:
        raise ConfigurationError("hypernet data.n_train and data.n_val must be at least 10 (stratified splits)")
    if dataset == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = x / 16.0
        pool_x, pool_y, test_x, test_y = x, y, None, None
    else:
        pool_x, pool_y, test_x, test_y = _load_mnist(Path(mnist_root))

    # Without a separate test set the test examples come from the same pool (at least one).
    needed = n_train + n_val + ((n_test or 1) if test_x is None else 0)
    if needed > len(pool_y):
        raise ConfigurationError(
            f"hypernet data asks for {needed} examples but {dataset} has {len(pool_y)}; "
            "lower n_train, n_val or n_test"
        )
    x_tr, rest_x, y_tr, rest_y = train_test_split(
        pool_x, pool_y, train_size=n_train, stratify=pool_y, random_state=seed
    )
    x_va, rest_x, y_va, rest_y = train_test_split(
        rest_x, rest_y, train_size=n_val, stratify=rest_y, random_state=seed + 1
    )
    if test_x is None:
        test_x, test_y = rest_x, rest_y
    if n_test is not None and n_test < len(test_y):
        test_x, _, test_y, _ = train_test_split(
            test_x, test_y, train_size=n_test, stratify=test_y, random_state=seed + 2
        )

    def f(a: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.float32)

    def lab(a: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.long)

    return DataSplit(f(x_tr), lab(y_tr), f(x_va), lab(y_va), f(test_x), lab(test_y), 10, dataset)


def _load_mnist(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST train pool and test set from ``root`` (torchvision layout ``root/MNIST/raw``)."""
    missing = DatasetNotFoundError(
        f"MNIST was not found under {root / 'MNIST' / 'raw'}; put the four MNIST idx files "
        "there (torchvision layout), set hypernet data.mnist_root to the folder that holds "
        "MNIST/, or use data.dataset: digits"
    )
    if not (root / "MNIST" / "raw").is_dir():  # fail before the slow torchvision import
        raise missing
    from torchvision.datasets import MNIST

    try:
        train = MNIST(str(root), train=True, download=False)
        test = MNIST(str(root), train=False, download=False)
    except RuntimeError as exc:
        raise missing from exc

    def flat(ds: MNIST) -> tuple[np.ndarray, np.ndarray]:
        return ds.data.reshape(len(ds.data), -1).numpy() / 255.0, ds.targets.numpy()

    return (*flat(train), *flat(test))
