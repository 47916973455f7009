"""A family of image datasets whose best hyperparameters differ (issue 21, item 6).

Seed 000 (section 4) learns meta-features over 80 class subsets of four image sources. A learned
distance can only help BO if the datasets' hyperparameter -> accuracy mappings differ, and class
subsets of one source alone differ little. So every member is a class subset of the subsample
stage (:func:`transfertune.data.samplers.class_subsets`, distinct class sets) with three factors
drawn from a factorial design:

- **size**: ``n_per_class`` examples of each class (fewer examples: fewer SGD steps per epoch, so
  a small learning rate or a large batch underfits);
- **label noise**: a fraction of the *training* labels replaced by a uniformly drawn class
  (validation labels stay clean, so the validation accuracy measures what the model learned
  despite the noise; the optimum moves towards fewer effective steps);
- **input corruption**: ``none``, ``gaussian_noise`` (``x + N(0, std^2)``, clipped to the data
  range) or ``occlusion`` (a square of ``size`` x the image side set to 0 at a random place in
  each image), applied to every image of the member before the split.

Member ``i`` takes design row ``order[i mod R]`` of the ``R`` factor combinations (``order`` a
seeded permutation), so every combination appears as evenly as the member count allows.

A member is a :class:`FamilyDataset`: the train-stage :class:`~transfertune.training.trainer.TaskData`
(split, standardised, noisy training labels) that the catalog and the live BO train on, and the
unstandardised training images in the data range, which the Siamese network and the hand-crafted
meta-features see (the paper's wing reads images only).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transfertune.errors import ConfigurationError
from transfertune.training.trainer import TaskData

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


def build_family(design: FamilyDesign, root: str | None = None, val_fraction: float = 0.3, split_seed: int = 0) -> list[FamilyDataset]:
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
