"""Samplers: sizes, reproducibility, the closest-first rule, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from transfertune.data import load_source, manifests_from_frame, manifests_to_frame, materialise
from transfertune.data.adversarial import AttackResult
from transfertune.data.samplers import adversarial_proxy_subsets, class_subsets, random_proxy_subsets
from transfertune.data.sources import ArraySource
from transfertune.errors import ConfigurationError, DataValidationError


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def fake_scores(n: int, seed: int = 0, fail_every: int = 7) -> AttackResult:
    """Known norms so the ranking can be checked exactly (no model needed)."""
    rng = np.random.default_rng(seed)
    norm = rng.uniform(0.1, 2.0, size=n)
    success = np.arange(n) % fail_every != 0
    norm[~success] = np.inf
    z = np.zeros(n, dtype=np.int64)
    return AttackResult(success, norm, norm.copy(), z, z, np.full(n, 0.5), np.ones(3), np.zeros(3), np.ones(3))


def test_class_subsets_shape_and_labels(digits):
    subsets = class_subsets(digits, n_subsets=20, n_classes=5, n_per_class=30, seed=0)
    assert len(subsets) == 20 and len({s.subset_id for s in subsets}) == 20
    assert len({tuple(s.classes) for s in subsets}) == 20  # distinct class sets by default
    for s in subsets:
        assert s.size == 150 and len(set(s.indices.tolist())) == 150
        assert sorted(set(digits.y[s.indices].tolist())) == s.classes
        assert np.all(np.bincount(digits.y[s.indices], minlength=10)[s.classes] == 30)
        sub = materialise(s, digits)
        assert sorted(set(sub.y.tolist())) == [0, 1, 2, 3, 4]


def test_class_subsets_all_examples(digits):
    (s,) = class_subsets(digits, 1, 2, None, seed=4)
    assert s.size == int(np.isin(digits.y, s.classes).sum())


def test_same_seed_same_subsets_other_seed_other_subsets(digits):
    scores = fake_scores(len(digits))
    for make in (
        lambda seed: class_subsets(digits, 4, 3, 10, seed),
        lambda seed: random_proxy_subsets(digits, 4, 0.1, seed),
        lambda seed: adversarial_proxy_subsets(digits, scores, 4, 0.1, 0.5, seed, pool_factor=2.0),
    ):
        a, b, c = make(1), make(1), make(2)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.indices, y.indices)
        assert any(not np.array_equal(x.indices, z.indices) for x, z in zip(a, c))
    # growing n_subsets keeps the first ones
    few, more = random_proxy_subsets(digits, 2, 0.1, 9), random_proxy_subsets(digits, 5, 0.1, 9)
    np.testing.assert_array_equal(few[1].indices, more[1].indices)


def test_random_proxy_size(digits):
    subsets = random_proxy_subsets(digits, 3, 0.1, seed=0)
    assert all(s.size == 180 and len(set(s.indices.tolist())) == 180 for s in subsets)
    assert np.all(np.isnan(subsets[0].perturbation_norm))
    assert random_proxy_subsets(digits, 1, 1.0, seed=0)[0].size == len(digits)


def test_adversarial_subsets_take_the_closest_then_fill(digits):
    scores = fake_scores(len(digits))
    subsets = adversarial_proxy_subsets(digits, scores, 3, ratio=0.1, adversarial_fraction=0.5, seed=0)
    closest = np.argsort(np.where(scores.success, scores.norm, np.inf), kind="stable")[:90]
    for s in subsets:
        assert s.size == 180 and len(set(s.indices.tolist())) == 180
        np.testing.assert_array_equal(s.indices[:90], closest)  # closest first, in order
        np.testing.assert_array_equal(s.perturbation_norm, scores.norm[s.indices])
        assert np.all(np.diff(s.perturbation_norm[:90]) >= 0)
    assert not np.array_equal(subsets[0].indices[90:], subsets[1].indices[90:])  # the random fill differs
    rnd = random_proxy_subsets(digits, 3, 0.1, seed=0, scores=scores)
    assert np.median(subsets[0].perturbation_norm) < np.median(rnd[0].perturbation_norm)


def test_adversarial_core_is_capped_by_successes(digits):
    scores = fake_scores(len(digits), fail_every=1)  # nothing succeeded
    scores.success[:5] = True
    scores.norm[:5] = [0.5, 0.4, 0.3, 0.2, 0.1]
    (s,) = adversarial_proxy_subsets(digits, scores, 1, ratio=0.1, adversarial_fraction=1.0, seed=0)
    assert s.size == 180
    np.testing.assert_array_equal(s.indices[:5], [4, 3, 2, 1, 0])
    assert np.all(np.isinf(s.perturbation_norm[5:]))


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5, True])
def test_ratio_outside_unit_interval(digits, ratio):
    with pytest.raises(ConfigurationError, match=r"ratio must be in \(0, 1\]"):
        random_proxy_subsets(digits, 1, ratio, seed=0)
    with pytest.raises(ConfigurationError, match=r"ratio must be in \(0, 1\]"):
        adversarial_proxy_subsets(digits, fake_scores(len(digits)), 1, ratio, 0.5, seed=0)


def test_class_subset_errors(digits):
    with pytest.raises(ConfigurationError, match="has only 10 classes"):
        class_subsets(digits, 1, 11, 10, seed=0)
    with pytest.raises(ConfigurationError, match="lower n_per_class"):
        class_subsets(digits, 1, 5, 1000, seed=0)
    with pytest.raises(ConfigurationError, match="regression"):
        class_subsets(load_source("diabetes"), 1, 2, 10, seed=0)
    with pytest.raises(ConfigurationError, match="n_subsets"):
        class_subsets(digits, 0, 2, 10, seed=0)
    with pytest.raises(ConfigurationError, match="distinct sets"):
        class_subsets(digits, 46, 2, 10, seed=0)  # C(10, 2) = 45
    assert len(class_subsets(digits, 46, 2, 10, seed=0, distinct_classes=False)) == 46


def test_empty_source_is_rejected():
    with pytest.raises(DataValidationError, match="empty"):
        ArraySource("nothing", np.zeros((0, 3), np.float32), np.zeros(0, np.int64), "classification", ["a"])


def test_sampled_manifests_round_trip(digits):
    subsets = class_subsets(digits, 2, 3, 5, seed=0) + random_proxy_subsets(digits, 1, 0.05, seed=0)
    back = manifests_from_frame(manifests_to_frame(subsets))
    assert [b.subset_id for b in back] == [s.subset_id for s in subsets]
    np.testing.assert_array_equal(back[2].labels, digits.y[subsets[2].indices])
