"""The testbed card's statistics on response tables with known answers (issue 27, item 3)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from transfertune.data.testbed import (
    best_of_k_regret,
    card,
    dataset_statistics,
    factor_effects,
    nearest,
    noise_sd,
    proxy_task,
    response_tables,
    spearman_matrix,
    transfer_matrix,
    verdicts,
)
from transfertune.training.trainer import TaskData

# 4 tasks x 4 configs; tasks 0/1 share their best config (0), tasks 2/3 theirs (3).
Y = np.array([
    [0.9, 0.5, 0.4, 0.1],
    [0.8, 0.6, 0.3, 0.2],
    [0.1, 0.3, 0.5, 0.9],
    [0.2, 0.4, 0.6, 0.7],
])


def test_best_of_k_regret_is_the_exact_expectation():
    values = np.array([1.0, 0.8, 0.5, 0.0])
    # brute force over every k-subset
    for k in (1, 2, 3, 4):
        expected = np.mean([1.0 - max(s) for s in itertools.combinations(values, k)])
        assert best_of_k_regret(values, k) == pytest.approx(expected)
    assert best_of_k_regret(values, 1) == pytest.approx(np.mean(1.0 - values))


def test_transfer_matrix_uses_the_other_tasks_best_config():
    R = transfer_matrix(Y)
    assert np.allclose(np.diag(R), 0.0)
    assert R[0, 2] == pytest.approx(0.9 - 0.1)  # task 2's best is config 3; on task 0 it scores 0.1
    assert R[3, 1] == pytest.approx(0.7 - 0.2)  # task 1's best is config 0; on task 3 it scores 0.2
    assert R[1, 0] == pytest.approx(0.0)


def test_oracle_nearest_by_response_finds_the_twin():
    rho = spearman_matrix(Y)
    assert np.allclose(rho, [[spearmanr(a, b)[0] for b in Y] for a in Y])
    assert list(nearest(1.0 - rho)) == [1, 0, 3, 2]


def test_card_numbers_on_the_known_table():
    Y_seeds = np.stack([Y - 0.01, Y + 0.01], axis=2)  # every config: SD over the 2 seeds = 0.01 * sqrt(2)
    proxy = {1: Y[:, ::-1].copy(), 10: Y + 0.05}  # lowest budget: ranks reversed; highest: same ranks
    c = card(Y, Y_seeds, proxy, S=np.array([[0.0], [0.1], [5.0], [5.2]]), seconds=[1.0, 2.0, 4.0])
    r = Y.max(axis=1, keepdims=True) - Y
    assert c["random_regret"] == pytest.approx(np.median(r))
    assert c["noise_sd"] == pytest.approx(0.01 * np.sqrt(2))
    R = transfer_matrix(Y)
    assert c["random_other"] == pytest.approx(np.median(R[~np.eye(4, dtype=bool)]))
    assert c["oracle_nearest"] == pytest.approx(np.median([R[0, 1], R[1, 0], R[2, 3], R[3, 2]]))
    assert c["stats_nearest"] == pytest.approx(c["oracle_nearest"])  # the statistics pair the same twins
    assert c["proxy_low"] == pytest.approx(-1.0) and c["proxy_high"] == pytest.approx(1.0)
    assert c["seconds_median"] == pytest.approx(2.0)
    v = verdicts(c)
    assert v["random_regret"] and v["oracle_nearest"] and v["proxy_high"] and v["cost"]


def test_noise_sd_pools_the_top_half_only():
    Y_seeds = np.zeros((1, 4, 2))
    Y_seeds[0, :, 0] = [0.9, 0.8, 0.1, 0.1]
    Y_seeds[0, :, 1] = [0.9, 0.8, 0.3, 0.5]  # the spread sits in the bottom half
    assert noise_sd(Y_seeds) == pytest.approx(0.0)
    Y_seeds[0, 0, 1] = 0.7  # top config: seeds 0.9 and 0.7 -> var 0.02
    assert noise_sd(Y_seeds) == pytest.approx(np.sqrt(0.02 / 2))


def test_factor_effects_separate_a_factor_that_moves_the_optimum():
    factors = [{"a": 0, "b": 0}, {"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 1, "b": 0}]
    table = factor_effects(transfer_matrix(Y), factors).set_index("factor")
    R = transfer_matrix(Y)
    assert table.loc["a", "median_regret_differing_only_here"] == pytest.approx(np.median([R[i, j] for i in (0, 1) for j in (2, 3)] + [R[j, i] for i in (0, 1) for j in (2, 3)]))
    assert table.loc["a", "median_regret_twins"] == pytest.approx(np.median([R[0, 1], R[1, 0], R[2, 3], R[3, 2]]))
    assert table.loc["b", "n_pairs"] == 0


def test_response_tables_average_seeds_and_refuse_missing_cells():
    rows = [{"task": t, "config_id": c, "seed": s, "epoch": e, "val_acc": 0.1 * c + 0.01 * s + (0.5 if t == "b" else 0.0)}
            for t in ("a", "b") for c in range(3) for s in (0, 1) for e in (1, 2)]
    obs = pd.DataFrame(rows)
    Y_, Ys, tasks, configs = response_tables(obs, "val_acc")
    assert tasks == ["a", "b"] and configs == [0, 1, 2] and Ys.shape == (2, 3, 2)
    assert Y_[1, 2] == pytest.approx(0.5 + 0.2 + 0.005)
    with pytest.raises(Exception, match="lack val_acc"):
        response_tables(obs.iloc[1:], "val_acc", epoch=1)


def test_proxy_task_keeps_the_share_per_class_and_the_validation_part():
    y = np.repeat(np.arange(3), 40)
    t = TaskData("t", np.arange(240, dtype=np.float32).reshape(120, 2), y, np.zeros((5, 2), np.float32), np.zeros(5, np.int64), n_classes=3)
    p = proxy_task(t, 0.1, seed=0)
    assert np.bincount(p.y_train).tolist() == [4, 4, 4] and p.X_val is t.X_val and p.name == "t-p10"


def test_dataset_statistics_see_scale_size_and_label_noise():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (100, 5)), rng.normal(4, 1, (100, 5))])
    y = np.repeat([0, 1], 100)
    clean = dataset_statistics(X, y, 2)
    scaled = dataset_statistics(10 * X, y, 2)
    noisy_y = y.copy()
    noisy_y[rng.choice(200, 60, replace=False)] ^= 1
    noisy = dataset_statistics(X, noisy_y, 2)
    assert scaled["log_sd"] == pytest.approx(clean["log_sd"] + np.log(10))
    assert clean["knn_agreement"] > 0.95 > noisy["knn_agreement"]
    assert clean["log_n"] == pytest.approx(np.log(200)) and clean["class_entropy"] == pytest.approx(1.0)


def test_card_run_and_database_from_its_store_load_with_the_catalog_validator(tmp_path):
    from transfertune.core.catalog import ObservationCatalog
    from transfertune.data.families import get_family
    from transfertune.data.testbed import run_card, write_family_database
    from transfertune.errors import ConfigurationError

    spec = get_family("tabular_mlp").replace(n_tasks=3, factors={"n_train": [30], "label_noise": [0.0, 0.2]}, n_val=20, epochs=2,
                                             base_options={"n_samples": 400, "n_classes": 3, "n_informative": 4, "n_redundant": 0, "n_features": 6})
    result = run_card(spec, str(tmp_path / "card"), n_configs=2, proxy_configs=2)
    assert result["card"]["n_tasks"] == 3 and result["card"]["n_configs"] == 2 and "proxy_high" in result["card"]
    with pytest.raises(ConfigurationError, match="2 complete configs"):
        run_card(spec, str(tmp_path / "card"), n_configs=2, train=False)
    info = write_family_database(spec, tmp_path / "card" / "full" / "_trials", tmp_path / "db", n_configs=2,
                                 pairs={"method": "random", "n_train": 1, "n_pairs": 2})
    catalog = ObservationCatalog.load(tmp_path / "db", tmp_path / "db" / "space.yml", "val_acc")
    assert catalog.summary()["tasks"] == 3 and catalog.summary()["configs"] == 2 and catalog.max_epoch == 2
    assert catalog.seeds == [0, 1] and len(catalog.pairs) == 2 and info["n_configs"] == 2


def test_card_shards_train_what_run_card_reads(tmp_path):
    from transfertune.data.families import get_family
    from transfertune.data.testbed import run_card, train_card_shard

    spec = get_family("tabular_mlp").replace(n_tasks=3, factors={"n_train": [30]}, n_val=20, epochs=1,
                                             base_options={"n_samples": 300, "n_classes": 3, "n_informative": 4, "n_redundant": 0, "n_features": 6})
    trained = sum(train_card_shard(spec, str(tmp_path), p, 2, n_configs=10, proxy_configs=10) for p in (0, 1))
    assert trained == 3 * 10 * 2 + 3 * 10
    result = run_card(spec, str(tmp_path), n_configs=10, train=False)
    assert result["card"]["n_configs"] == 10 and result["card"]["proxy_configs"] == 10
