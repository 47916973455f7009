"""The shipped database of the mnist1d_scale family (issue 27, item 4): its layout loads, and the
structure its card promises is in the shipped numbers: each input scale has its own best config
(the largest scale's good learning rates a decade below the others'), tasks at one scale agree with
each other more than across scales, and a random config is far from each task's best."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from transfertune.core.catalog import ObservationCatalog
from transfertune.data.testbed import response_tables, spearman_matrix

DB = ROOT / "data" / "01_raw" / "mnist1d_scale"


@pytest.fixture(scope="module")
def tables():
    observations = pd.read_parquet(DB / "observations.parquet")
    Y, _, names, config_ids = response_tables(observations, "val_acc")
    configs = pd.read_json(DB / "configs.jsonl", lines=True).set_index("config_id").loc[config_ids]
    factors = {t["task"]: t["factors"] for t in json.loads((DB / "tasks.json").read_text())}
    scale = np.array([factors[n]["input_scale"] for n in names])
    return Y, configs, scale


def test_the_database_loads_with_the_catalog_validator():
    catalog = ObservationCatalog.load(DB, DB / "space.yml", "val_acc")
    summary = catalog.summary()
    assert summary["tasks"] >= 30 and summary["configs"] == 100 and catalog.max_epoch == 10 and catalog.seeds == [0, 1]
    assert len(catalog.pairs) >= 10
    assert sum(p.stat().st_size for p in DB.iterdir()) < 20e6


def test_each_input_scale_has_its_own_best_config(tables):
    Y, _, scale = tables
    levels = np.unique(scale)
    assert len(levels) == 4
    modes = []
    for level in levels:
        best = np.argmax(Y[scale == level], axis=1)
        values, counts = np.unique(best, return_counts=True)
        assert counts.max() >= len(best) / 2, (level, best)  # the tasks of one scale mostly agree on their best
        modes.append(values[np.argmax(counts)])
    assert len(set(modes)) == len(levels), modes  # and the scales do not


def test_the_largest_input_scale_wants_learning_rates_a_decade_smaller(tables):
    Y, configs, scale = tables
    log_lr = np.log10(configs["lr"].to_numpy())
    top = {s: np.median([np.mean(log_lr[np.argsort(-Y[i])[:5]]) for i in np.flatnonzero(scale == s)]) for s in np.unique(scale)}
    largest = max(top)
    assert top[largest] < min(v for s, v in top.items() if s != largest) - 1.0, top


def test_tasks_agree_within_a_scale_more_than_across(tables):
    Y, _, scale = tables
    rho = spearman_matrix(Y)
    same = scale[:, None] == scale[None, :]
    off = ~np.eye(len(Y), dtype=bool)
    assert np.median(rho[same & off]) > np.median(rho[~same]) + 0.2


def test_a_random_config_is_far_from_the_best(tables):
    Y, _, _ = tables
    assert np.median(Y.max(axis=1, keepdims=True) - Y) >= 0.10


def test_observations_from_database_return_the_stored_trials_of_the_same_configs():
    from transfertune.core.spaces import SearchSpace
    from transfertune.errors import ConfigurationError
    from transfertune.training.build import observations_from_database
    from transfertune.training.sampling import sample_configs

    configs = sample_configs(SearchSpace.from_yaml(DB / "space.yml"), "lhs", 100, 0)  # the database's own sampling
    names = ["mnist1d_scale-s0-000-x3", "mnist1d_scale-s0-001-x30"]
    observations, _ = observations_from_database(DB, names, configs, [0], 10)
    assert sorted(observations.task.unique()) == names and set(observations.seed) == {0}
    assert len(observations) == 2 * 100 * 10
    stored = pd.read_parquet(DB / "observations.parquet")
    row = stored[(stored.task == names[1]) & (stored.seed == 0) & (stored.config_id == 7) & (stored.epoch == 10)].val_acc.item()
    assert observations[(observations.task == names[1]) & (observations.config_id == 7) & (observations.epoch == 10)].val_acc.item() == row
    with pytest.raises(ConfigurationError, match="config 0 differs"):
        observations_from_database(DB, names, sample_configs(SearchSpace.from_yaml(DB / "space.yml"), "lhs", 100, 1), [0], 10)
    with pytest.raises(ConfigurationError, match="lacks task"):
        observations_from_database(DB, ["nope"], configs, [0], 10)
    with pytest.raises(ConfigurationError, match="with 12 epochs each"):
        observations_from_database(DB, names, configs, [0], 12)


def test_observations_from_database_match_configs_by_id_not_by_line(tmp_path):
    import shutil

    from transfertune.core.spaces import SearchSpace
    from transfertune.errors import ConfigurationError
    from transfertune.training.build import observations_from_database
    from transfertune.training.sampling import sample_configs

    copy = tmp_path / "db"
    shutil.copytree(DB, copy)
    lines = (copy / "configs.jsonl").read_text().splitlines()
    (copy / "configs.jsonl").write_text("\n".join(reversed(lines)) + "\n")  # same records, other order
    configs = sample_configs(SearchSpace.from_yaml(DB / "space.yml"), "lhs", 100, 0)
    observations, _ = observations_from_database(copy, ["mnist1d_scale-s0-000-x3"], configs, [0], 10)
    assert len(observations) == 100 * 10
    (copy / "configs.jsonl").write_text("\n".join(lines[1:]) + "\n")  # config 0 gone
    with pytest.raises(ConfigurationError, match="holds 99 configs, 100 are asked"):
        observations_from_database(copy, ["mnist1d_scale-s0-000-x3"], configs, [0], 10)
