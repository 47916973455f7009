"""Target distances (L1 between mappings), rank correlations and nearest neighbours."""

import numpy as np
import pytest

from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.methods.siamese.distances import l1_distance, mappings, nearest, rowwise_spearman, spearman, target_distances


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
