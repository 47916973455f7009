"""Target distances (L1 between mappings, and issue 29's zscore_l1 and rank_l1), rank correlations,
nearest neighbours and the retrieval regret."""

import itertools

import numpy as np
import pytest

from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.methods.siamese.distances import (
    best_configs,
    l1_distance,
    mappings,
    nearest,
    random_retrieval_regret,
    retrieval_regret,
    rowwise_spearman,
    spearman,
    target_distances,
    transform_mappings,
)


def test_l1_distance_is_the_mean_absolute_difference_over_shared_configs():
    a = np.array([0.9, 0.5, np.nan, 0.2])
    b = np.array([0.7, 0.8, 0.4, np.nan])
    d, n = l1_distance(a, b)
    assert n == 2 and d == pytest.approx((0.2 + 0.3) / 2)


def test_target_distances_are_symmetric_with_a_zero_diagonal_and_match_the_formula():
    maps = np.array([[0.9, 0.8, 0.1], [0.5, 0.8, 0.3], [0.1, 0.1, 0.1]])
    D = target_distances(maps, ["a", "b", "c"])
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(np.diag(D), 0.0)
    assert D[0, 1] == pytest.approx((0.4 + 0.0 + 0.2) / 3) and D[0, 2] == pytest.approx((0.8 + 0.7 + 0.0) / 3)
    cross = target_distances(maps[:1], ["a"], others=maps[1:], other_names=["b", "c"])
    np.testing.assert_allclose(cross, D[:1, 1:])


def test_too_few_shared_configs_names_both_datasets():
    maps = np.array([[0.9, np.nan, np.nan], [np.nan, 0.5, 0.4], [0.3, 0.2, 0.1]])
    with pytest.raises(ConfigurationError, match="datasets 'a' and 'b' share 0 recorded config"):
        target_distances(maps, ["a", "b", "c"], min_shared=1)
    with pytest.raises(ConfigurationError, match="datasets 'b' and 'c' share 2 .*min_shared_configs=3"):
        target_distances(maps[1:], ["b", "c"], min_shared=3)


def test_mappings_take_the_last_epoch_of_every_config(synthetic_db):
    catalog = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    maps = mappings(catalog, ["task0", "task1"])
    np.testing.assert_allclose(maps[0], catalog.grid("task0")[:, -1])
    np.testing.assert_allclose(mappings(catalog, ["task1"], epoch=1)[0], catalog.grid("task1")[:, 0])
    with pytest.raises(ConfigurationError, match="no observations"):
        mappings(catalog, ["nope"])
    with pytest.raises(ConfigurationError, match="epoch 99"):
        mappings(catalog, ["task0"], epoch=99)


def test_spearman_orders_and_rows():
    target = np.array([0.1, 0.2, 0.3, 0.4])
    assert spearman(target**2, target) == pytest.approx(1.0)
    assert spearman(-target, target) == pytest.approx(-1.0)
    assert spearman(np.ones(4), target) == 0.0
    rows = rowwise_spearman(np.stack([target, -target]), np.stack([target, target]))
    np.testing.assert_allclose(rows, [1.0, -1.0])


def test_nearest_breaks_ties_by_index():
    np.testing.assert_array_equal(nearest(np.array([0.3, 0.1, 0.1, 0.0]), 3), [3, 1, 2])
    with pytest.raises(ConfigurationError, match="k must be in 1..4"):
        nearest(np.zeros(4), 5)


def test_zscore_l1_compares_shapes_not_levels():
    # b = a shifted down by 0.3 and c = a stretched x2 around its mean: l1 sees the level, zscore_l1 does not
    a = np.array([0.9, 0.6, 0.3, 0.6])
    maps = np.stack([a, a - 0.3, 2 * (a - a.mean()) + a.mean(), a[::-1]])
    z = transform_mappings(maps, "zscore_l1")
    np.testing.assert_allclose(z[0], (a - 0.6) / np.sqrt(0.045))  # known answer: mean 0.6, population SD sqrt(0.045)
    D = target_distances(maps, list("abcd"), kind="zscore_l1")
    assert D[0, 1] == pytest.approx(0.0, abs=1e-12) and D[0, 2] == pytest.approx(0.0, abs=1e-12)
    assert D[0, 3] == pytest.approx(np.abs(z[0] - z[0][::-1]).mean())
    assert target_distances(maps, list("abcd"))[0, 1] == pytest.approx(0.3)  # the paper's l1: the level
    # a constant mapping is 0 everywhere, NaN stays NaN
    flat = transform_mappings(np.array([[0.5, 0.5, np.nan]]), "zscore_l1")
    np.testing.assert_array_equal(flat[0, :2], [0.0, 0.0]) and np.isnan(flat[0, 2])


def test_rank_l1_uses_normalised_average_ranks():
    maps = np.array([[0.1, 0.5, 0.3, 0.9], [0.2, 0.8, 0.4, 0.7], [0.5, 0.5, 0.1, np.nan]])
    r = transform_mappings(maps, "rank_l1")
    np.testing.assert_allclose(r[0], [0.0, 2 / 3, 1 / 3, 1.0])  # best config -> 1
    np.testing.assert_allclose(r[1], [0.0, 1.0, 1 / 3, 2 / 3])
    np.testing.assert_allclose(r[2, :3], [0.75, 0.75, 0.0])  # ties: average rank 2.5 of 3 -> (2.5 - 1) / 2
    D = target_distances(maps[:2], ["a", "b"], kind="rank_l1")
    assert D[0, 1] == pytest.approx((0 + 1 / 3 + 0 + 1 / 3) / 4)
    # monotone transforms of a mapping are at distance 0
    assert target_distances(np.stack([maps[0], maps[0] ** 3]), ["a", "b"], kind="rank_l1")[0, 1] == pytest.approx(0.0)
    with pytest.raises(ConfigurationError, match="unknown target distance 'l2'"):
        target_distances(maps, ["a", "b", "c"], kind="l2")


def test_retrieval_regret_evaluates_the_neighbours_best_configs_on_the_target():
    target = np.array([0.5, 0.9, 0.7, 0.2])
    neighbours = np.array([[0.1, 0.2, 0.8, 0.3],    # best config 2 -> 0.7 on the target
                           [0.9, 0.1, 0.1, 0.1]])   # best config 0 -> 0.5
    np.testing.assert_array_equal(best_configs(neighbours), [2, 0])
    assert retrieval_regret(target, neighbours) == pytest.approx(0.9 - 0.7)
    assert retrieval_regret(target, neighbours[1]) == pytest.approx(0.9 - 0.5)
    assert retrieval_regret(target, np.array([[0.0, 1.0, 0.0, 0.0]])) == pytest.approx(0.0)
    # a pick the target did not record counts as not tried
    assert retrieval_regret(np.array([0.5, 0.9, np.nan, 0.2]), neighbours) == pytest.approx(0.4)


def test_random_retrieval_regret_is_the_exact_mean_over_k_subsets():
    rng = np.random.default_rng(0)
    target = rng.random(12)
    candidates = rng.random((7, 12))
    for k in (1, 2, 3, 7):
        brute = np.mean([retrieval_regret(target, candidates[list(s)]) for s in itertools.combinations(range(7), k)])
        assert random_retrieval_regret(target, candidates, k) == pytest.approx(brute)
    # known answer: values on the target 0.2, 0.5, 0.9 (best 0.9): k=2 picks max 0.5 w.p. 1/3, 0.9 w.p. 2/3
    t = np.array([0.2, 0.5, 0.9])
    assert random_retrieval_regret(t, np.eye(3), 2) == pytest.approx(0.9 - (0.5 / 3 + 0.9 * 2 / 3))
    assert random_retrieval_regret(t, np.eye(3), 1) == pytest.approx(0.9 - (0.2 + 0.5 + 0.9) / 3)
    with pytest.raises(ConfigurationError, match="k must be in 1..3"):
        random_retrieval_regret(t, np.eye(3), 4)
