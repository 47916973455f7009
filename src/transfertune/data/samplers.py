"""Subset samplers: every one is seeded and returns :class:`SubsetManifest` index lists.

* :func:`class_subsets` (seed 000, section 4): ``n_subsets`` subsets of ``n_classes`` classes x
  ``n_per_class`` examples each, the classes drawn at random per subset;
* :func:`random_proxy_subsets`: uniform subsets of ``ratio * N`` samples (the paper's baseline);
* :func:`adversarial_proxy_subsets` (seed 003, section 3.2): the samples closest to the decision
  boundary (smallest successful perturbation, from :mod:`transfertune.data.adversarial`) fill an
  ``adversarial_fraction`` of each subset, random samples from the rest fill it up.

Randomness: subset ``i`` of a sampler draws from ``SeedSequence([seed, strategy]).spawn(...)[i]``,
so the same seed gives the same subsets, subset ``i`` does not change when ``n_subsets`` grows,
and two strategies with one seed do not share their random draws.
"""

from __future__ import annotations

import math

import numpy as np

from transfertune.data.adversarial import AttackResult
from transfertune.data.manifest import SubsetManifest
from transfertune.data.sources import ArraySource
from transfertune.errors import ConfigurationError

_STRATEGY_CODE = {"class_subset": 1, "random_proxy": 2, "adversarial_proxy": 3}
_SHORT = {"class_subset": "cls", "random_proxy": "rnd", "adversarial_proxy": "adv"}


def subset_rngs(seed: int, strategy: str, n: int) -> list[np.random.Generator]:
    """Independent generators for subsets ``0..n-1`` of one strategy."""
    children = np.random.SeedSequence([int(seed), _STRATEGY_CODE[strategy]]).spawn(n)
    return [np.random.default_rng(c) for c in children]


def subset_id(tag: str, strategy: str, seed: int, i: int) -> str:
    """Stable id, e.g. ``digits-adv-s0-003``."""
    return f"{tag}-{_SHORT[strategy]}-s{int(seed)}-{i:03d}"


def target_size(n_total: int, ratio: float, name: str = "ratio") -> int:
    """``round(ratio * n_total)``, at least 1.

    Raises:
        ConfigurationError: ``ratio`` outside ``(0, 1]``.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ConfigurationError(f"{name} must be in (0, 1] (a fraction of the full set), got {ratio!r}")
    return max(1, int(round(ratio * n_total)))


def _check_count(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _norms(result: AttackResult | None, idx: np.ndarray, n_total: int) -> np.ndarray:
    if result is None:
        return np.full(len(idx), np.nan)
    if len(result.norm) != n_total:
        raise ConfigurationError(f"the attack scored {len(result.norm)} samples but the source has {n_total}")
    return result.norm[idx].astype(np.float64)


def _labels(source: ArraySource, idx: np.ndarray) -> np.ndarray:
    return source.y[idx].astype(np.float64)


def _manifest(source: ArraySource, tag: str, strategy: str, seed: int, i: int, idx: np.ndarray, **extra) -> SubsetManifest:
    """The manifest of the i-th subset of a strategy: the fields every strategy shares, plus ``extra``."""
    return SubsetManifest(
        subset_id=subset_id(tag, strategy, seed, i),
        source=source.name,
        strategy=strategy,
        seed=int(seed),
        indices=idx,
        source_options=dict(source.options),
        labels=_labels(source, idx),
        **extra,
    )


def class_subsets(
    source: ArraySource,
    n_subsets: int,
    n_classes: int,
    n_per_class: int | None,
    seed: int,
    tag: str | None = None,
    distinct_classes: bool = True,
) -> list[SubsetManifest]:
    """``n_subsets`` subsets of ``n_classes`` random classes with ``n_per_class`` examples each.

    With ``distinct_classes`` no two subsets share the same class set (a subset redraws its
    classes from its own generator until the set is new), so every subset is a different task.

    Only classes holding at least ``n_per_class`` examples can be drawn; ``n_per_class=None``
    takes every example of the drawn classes. Indices come class by class (ascending class
    index), and ``manifest.classes`` lists the drawn classes in that order, which defines the
    remapped labels ``0..k-1`` of :func:`materialise`.

    Raises:
        ConfigurationError: a regression source, more classes than the source has (or than have
            ``n_per_class`` examples), or a non-positive count.
    """
    tag = tag or source.name
    n_subsets = _check_count("class_subsets.n_subsets", n_subsets)
    n_classes = _check_count("class_subsets.n_classes", n_classes, minimum=2)
    if n_per_class is not None:
        n_per_class = _check_count("class_subsets.n_per_class", n_per_class)
    if source.task_type != "classification":
        raise ConfigurationError(f"class subsets need a classification source; {tag!r} is a regression set (disable class_subsets for it)")
    counts = np.bincount(source.y, minlength=source.n_classes)
    present = np.flatnonzero(counts > 0)
    if n_classes > len(present):
        raise ConfigurationError(
            f"class_subsets.n_classes={n_classes} but source {tag!r} has only {len(present)} classes; lower n_classes"
        )
    eligible = present if n_per_class is None else np.flatnonzero(counts >= n_per_class)
    if n_classes > len(eligible):
        raise ConfigurationError(
            f"class_subsets: only {len(eligible)} classes of {tag!r} hold n_per_class={n_per_class} examples "
            f"(smallest class has {counts[present].min()}), fewer than n_classes={n_classes}; lower n_per_class or n_classes"
        )
    if distinct_classes and n_subsets > math.comb(len(eligible), n_classes):
        raise ConfigurationError(
            f"class_subsets: only {math.comb(len(eligible), n_classes)} distinct sets of {n_classes} classes exist in {tag!r}, "
            f"fewer than n_subsets={n_subsets}; lower n_subsets or set distinct_classes: false"
        )
    by_class = {int(c): np.flatnonzero(source.y == c) for c in eligible}
    used: set[tuple[int, ...]] = set()
    out = []
    for i, rng in enumerate(subset_rngs(seed, "class_subset", n_subsets)):
        chosen = np.sort(rng.choice(eligible, size=n_classes, replace=False))
        while distinct_classes and tuple(chosen.tolist()) in used:
            chosen = np.sort(rng.choice(eligible, size=n_classes, replace=False))
        used.add(tuple(chosen.tolist()))
        parts = []
        for c in chosen:
            members = by_class[int(c)]
            take = members if n_per_class is None else rng.choice(members, size=n_per_class, replace=False)
            parts.append(np.sort(take))
        idx = np.concatenate(parts)
        out.append(_manifest(source, tag, "class_subset", seed, i, idx, classes=[int(c) for c in chosen]))
    return out


def random_proxy_subsets(
    source: ArraySource,
    n_subsets: int,
    ratio: float,
    seed: int,
    scores: AttackResult | None = None,
    tag: str | None = None,
) -> list[SubsetManifest]:
    """``n_subsets`` uniform subsets of ``round(ratio * N)`` samples, without replacement.

    ``scores`` (optional) only annotates the samples with their perturbation norms, so random and
    adversarial subsets can be compared; it does not change which samples are drawn.
    """
    tag = tag or source.name
    n_subsets = _check_count("random_proxy.n_subsets", n_subsets)
    m = target_size(len(source), ratio, "random_proxy.ratio")
    out = []
    for i, rng in enumerate(subset_rngs(seed, "random_proxy", n_subsets)):
        idx = rng.choice(len(source), size=m, replace=False)
        out.append(_manifest(source, tag, "random_proxy", seed, i, idx, perturbation_norm=_norms(scores, idx, len(source))))
    return out


def adversarial_proxy_subsets(
    source: ArraySource,
    scores: AttackResult,
    n_subsets: int,
    ratio: float,
    adversarial_fraction: float,
    seed: int,
    pool_factor: float = 1.0,
    tag: str | None = None,
) -> list[SubsetManifest]:
    """Proxy subsets of ``round(ratio * N)`` samples built around the decision boundary.

    Each subset takes ``a = round(adversarial_fraction * m)`` samples (at most the number of
    successfully attacked ones) among the ``ceil(pool_factor * a)`` successful samples with the
    smallest perturbation norm (``pool_factor = 1``: exactly the ``a`` closest, as in the paper;
    larger values vary the adversarial core between subsets), then fills up to ``m`` with
    samples drawn uniformly from all the others. Indices come closest first, then the fill.

    Raises:
        ConfigurationError: ``ratio`` outside ``(0, 1]``, ``adversarial_fraction`` outside
            ``[0, 1]``, ``pool_factor < 1``, or scores of another length.
    """
    tag = tag or source.name
    n_subsets = _check_count("adversarial_proxy.n_subsets", n_subsets)
    m = target_size(len(source), ratio, "adversarial_proxy.ratio")
    if isinstance(adversarial_fraction, bool) or not 0 <= adversarial_fraction <= 1:
        raise ConfigurationError(f"adversarial_proxy.adversarial_fraction must be in [0, 1], got {adversarial_fraction!r}")
    if not pool_factor >= 1:
        raise ConfigurationError(f"adversarial_proxy.pool_factor must be >= 1, got {pool_factor!r}")
    if len(scores.norm) != len(source):
        raise ConfigurationError(f"the attack scored {len(scores.norm)} samples but source {tag!r} has {len(source)}")
    successful = np.flatnonzero(scores.success & np.isfinite(scores.norm))
    # stable sort: ties keep index order, so the ranking is reproducible
    ranked = successful[np.argsort(scores.norm[successful], kind="stable")]
    a = min(int(round(adversarial_fraction * m)), len(ranked))
    pool = ranked[: min(len(ranked), math.ceil(pool_factor * a))]
    out = []
    for i, rng in enumerate(subset_rngs(seed, "adversarial_proxy", n_subsets)):
        core = pool[:a] if len(pool) == a else np.sort(rng.choice(pool, size=a, replace=False))
        core = core[np.argsort(scores.norm[core], kind="stable")]
        rest = np.setdiff1d(np.arange(len(source)), core, assume_unique=True)
        fill = rng.choice(rest, size=m - a, replace=False)
        idx = np.concatenate([core, fill]).astype(np.int64)
        out.append(_manifest(source, tag, "adversarial_proxy", seed, i, idx, perturbation_norm=_norms(scores, idx, len(source))))
    return out
