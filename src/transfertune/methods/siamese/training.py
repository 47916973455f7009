"""Algorithm 1 of seed 000 (meta-feature learning over datasets) and the learned meta-features.

::

    model = train_siamese(images, D, SiameseSettings(beta=8, tau=32, iterations=1500), names)
    m = embed(model, images_of_a_new_dataset, tau=32, draws=8)      # (2 * hidden,)

``train_siamese``: for t = 1..T, draw ``beta`` distinct pairs ``(i, j)``, ``i != j``, of training
datasets uniformly (the paper writes "|i - j| = beta", which read literally allows one pair per
offset; we read it as beta different pairs), draw ``tau`` images of each side without
replacement, and take one Adam step on ``mean [d_target(i, j) - ||m_i - m_j||]^2`` over the pairs.
All weights are shared by the two wings (one module).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from transfertune.errors import ConfigurationError
from transfertune.methods.siamese.model import SiameseWing, siamese_loss


@dataclass
class SiameseSettings:
    """Everything Algorithm 1 takes besides the datasets and the target distances.

    Attributes:
        beta: pairs of datasets per step (the paper's batch size).
        tau: images sampled from each dataset of a pair (the paper's step size).
        iterations: T, Adam steps.
        lr: Adam learning rate.
        channels, fc_units, hidden: the wing's two conv widths, two FC widths and the LSTM's
            hidden size per direction (meta-features have ``2 * hidden`` entries).
        draws: tau-samples whose meta-features are averaged when a dataset is embedded for
            retrieval (one draw is the paper's; more lower the sampling noise).
        seed: initial weights and every draw.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    beta: int = 8
    tau: int = 32
    iterations: int = 1500
    lr: float = 1e-3
    channels: tuple[int, int] = (16, 32)
    fc_units: tuple[int, int] = (64, 32)
    hidden: int = 32
    draws: int = 8
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("beta", "tau", "iterations", "hidden", "draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigurationError(f"siamese.network.{name} must be a positive integer, got {value!r}")
        if not float(self.lr) > 0:
            raise ConfigurationError(f"siamese.network.lr must be positive, got {self.lr!r}")
        self.channels = tuple(int(c) for c in self.channels)  # type: ignore[assignment]
        self.fc_units = tuple(int(c) for c in self.fc_units)  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SiameseResult:
    """A trained wing and its training trace.

    Attributes:
        model: the wing (both sides of the Siamese network), in eval mode.
        losses: ``(T,)`` the loss of every step.
        seconds: training wall time.
        settings: what it was trained with.
    """

    model: SiameseWing
    losses: np.ndarray
    seconds: float
    settings: SiameseSettings = field(repr=False)


def conform_images(images: Mapping[str, np.ndarray], image_shape: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Every dataset's images ``(N, C, H, W)`` with one shape.

    ``image_shape = (C, H, W)`` resizes each image bilinearly (antialiased) to ``H x W`` and maps
    grey to colour by repeating the channel, colour to grey by averaging; None requires the
    datasets to share a shape already.

    Raises:
        ConfigurationError: a dataset that is not ``(N, C, H, W)``, or two shapes without
            ``image_shape`` (naming the dataset and both shapes).
    """
    out: dict[str, np.ndarray] = {}
    first: tuple[str, tuple[int, ...]] | None = None
    for name, array in images.items():
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != 4:
            raise ConfigurationError(f"dataset {name!r}: images must be (N, C, H, W), got shape {array.shape}")
        if image_shape is None:
            if first is None:
                first = (name, array.shape[1:])
            elif array.shape[1:] != first[1]:
                raise ConfigurationError(
                    f"dataset {name!r} has images of shape {tuple(array.shape[1:])} but {first[0]!r} has {tuple(first[1])}; "
                    "set siamese.network.image_shape: [C, H, W] to resize them all"
                )
            out[name] = array
            continue
        c, h, w = (int(s) for s in image_shape)
        x = torch.from_numpy(array)
        if x.shape[1] != c:
            if c == 1:
                x = x.mean(dim=1, keepdim=True)
            elif x.shape[1] == 1:
                x = x.repeat(1, c, 1, 1)
            else:
                raise ConfigurationError(f"dataset {name!r}: cannot map {x.shape[1]} channels to {c} (only grey <-> colour)")
        if tuple(x.shape[2:]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[name] = x.numpy()
    return out


def check_sizes(images: Mapping[str, np.ndarray], tau: int) -> None:
    """Raise a one-line error naming the first dataset with fewer than ``tau`` images."""
    for name, array in images.items():
        if len(array) < int(tau):
            raise ConfigurationError(f"dataset {name!r} has {len(array)} images, fewer than tau={tau} sampled per dataset; lower siamese.network.tau or enlarge the dataset")


def _sample(tensors: Sequence[torch.Tensor], which: Sequence[int], tau: int, generator: torch.Generator) -> torch.Tensor:
    """``(len(which), tau, C, H, W)``: tau images without replacement from each listed dataset."""
    picks = []
    for i in which:
        idx = torch.randperm(tensors[i].shape[0], generator=generator)[:tau]
        picks.append(tensors[i][idx.to(tensors[i].device)])
    return torch.stack(picks)


def sample_pairs(n: int, beta: int, generator: torch.Generator) -> np.ndarray:
    """``(beta, 2)`` distinct unordered pairs ``i < j`` of ``range(n)``, uniformly without replacement."""
    total = n * (n - 1) // 2
    if not 1 <= beta <= total:
        raise ConfigurationError(f"beta={beta} pairs per step, but {n} training datasets form only {total} pairs; lower siamese.network.beta")
    flat = torch.randperm(total, generator=generator)[:beta].numpy()
    rows, cols = np.triu_indices(n, k=1)
    return np.stack([rows[flat], cols[flat]], axis=1)


def train_siamese(images: Sequence[np.ndarray], target: np.ndarray, settings: SiameseSettings, names: Sequence[str] | None = None,
                  progress: bool = False) -> SiameseResult:
    """Algorithm 1 on ``n`` datasets.

    Args:
        images: n arrays ``(N_i, C, H, W)`` of one shape (see :func:`conform_images`).
        target: ``(n, n)`` target distances.
        settings: beta, tau, T and the wing.
        names: dataset names for errors (default ``dataset 0``...).
        progress: a tqdm bar over the T steps.

    Raises:
        ConfigurationError: fewer than 2 datasets, a target matrix of another shape, a dataset
            with fewer than tau images, mixed image shapes.
    """
    from tqdm.auto import tqdm

    from transfertune.core.device import pick_device

    names = list(names or [f"dataset {i}" for i in range(len(images))])
    if len(images) < 2:
        raise ConfigurationError(f"Algorithm 1 needs at least 2 training datasets, got {len(images)}")
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (len(images), len(images)) or not np.all(np.isfinite(target)):
        raise ConfigurationError(f"the target distances must be a finite ({len(images)}, {len(images)}) matrix, got shape {target.shape}")
    by_name = conform_images(dict(zip(names, images)))
    check_sizes(by_name, settings.tau)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    tensors = [torch.from_numpy(by_name[n]).to(device) for n in names]
    model = SiameseWing(tensors[0].shape[1:], settings.channels, settings.fc_units, settings.hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(settings.lr))
    D = torch.as_tensor(target, dtype=torch.float32, device=device)
    losses = np.zeros(settings.iterations)
    start = time.perf_counter()
    model.train()
    for t in tqdm(range(settings.iterations), desc="Algorithm 1", disable=not progress, mininterval=2.0):
        pairs = sample_pairs(len(tensors), settings.beta, generator)
        batch = _sample(tensors, pairs.reshape(-1).tolist(), settings.tau, generator)
        m = model(batch).reshape(len(pairs), 2, -1)
        loss = siamese_loss(D[pairs[:, 0], pairs[:, 1]], m[:, 0], m[:, 1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[t] = float(loss.detach())
    model.eval()
    return SiameseResult(model, losses, time.perf_counter() - start, settings)


@torch.no_grad()
def embed(model: SiameseWing, images: np.ndarray, tau: int, draws: int, seed: int = 0) -> np.ndarray:
    """The learned meta-feature of one dataset: the mean over ``draws`` tau-samples of its wing
    output, ``(N, C, H, W) -> (2 * hidden,)``."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).to(device)
    generator = torch.Generator().manual_seed(int(seed))
    batch = _sample([x] * int(draws), list(range(int(draws))), int(tau), generator)
    return model(batch).mean(dim=0).cpu().numpy().astype(np.float64)


def embed_all(model: SiameseWing, images: Mapping[str, np.ndarray], tau: int, draws: int, seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`embed` of every dataset (checked for size and shape against the model)."""
    check_sizes(images, tau)
    out = {}
    for name, array in images.items():
        if tuple(array.shape[1:]) != model.image_shape:
            raise ConfigurationError(f"dataset {name!r} has images of shape {tuple(array.shape[1:])}, the model was trained on {model.image_shape}; set siamese.network.image_shape")
        out[name] = embed(model, array, tau, draws, seed)
    return out


def pairwise_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a_i - b_j||_2`` for ``a (n, D)``, ``b (m, D)`` -> ``(n, m)``."""
    diff = np.asarray(a, dtype=np.float64)[:, None, :] - np.asarray(b, dtype=np.float64)[None, :, :]
    return np.sqrt((diff**2).sum(axis=-1))
