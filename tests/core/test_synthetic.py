"""The synthetic database generator: layout, determinism, formulas and the identifiability design."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from transfertune.core.catalog import ObservationCatalog
from transfertune.core.synthetic import (
    METRIC,
    NUMERIC,
    SPACE_FILE,
    SyntheticDesign,
    curve_fraction,
    family_landscape,
    generate,
    generate_database,
    saturate,
)
from transfertune.errors import ConfigurationError

SMALL = SyntheticDesign(n_configs=30, n_epochs=12, train_members=3, test_members=2, n_pairs=4, seed=3)


@pytest.fixture(scope="module")
def default_db():
    return generate()  # the identifiability database of the benchmark (0.2 s)


def finals(db, seed=None):
    """task -> best value over epochs per config (mean over curve seeds when seed is None)."""
    obs = db.observations if seed is None else db.observations[db.observations["seed"] == seed]
    table = obs.groupby(["task", "config_id", "epoch"])[METRIC].mean().unstack("epoch")
    return {task: table.loc[task].to_numpy().max(axis=1) for task in db.truth}


# ---------------------------------------------------------------------- layout
def test_database_loads_with_the_catalog_and_has_the_designed_shape(tmp_path):
    folder = generate_database(tmp_path / "db", SMALL)
    catalog = ObservationCatalog.load(folder, folder / SPACE_FILE, METRIC)
    assert len(catalog.tasks) == 2 * (3 + 2)
    assert len(catalog.config_ids) == 30 and catalog.max_epoch == 12 and catalog.seeds == [0, 1]
    assert len(catalog.observations) == 10 * 30 * 12 * 2
    values = catalog.observations[METRIC]
    assert values.between(0.0, 1.0).all() and values.std() > 0.05
    assert catalog.space.names == ["optimizer", *NUMERIC]
    assert set(catalog.configs[0]) == {"optimizer", *NUMERIC}
    assert isinstance(catalog.configs[0]["batch_size"], int)
    roles = {t["task"]: (t["family"], t["role"]) for t in json.loads((folder / "tasks.json").read_text())}
    assert json.loads((folder / "design.json").read_text())["design"]["seed"] == 3
    assert len(catalog.pairs) == 4
    tests = [p.test for p in catalog.pairs]
    assert len(set(tests)) == 4
    for k, pair in enumerate(catalog.pairs):
        assert roles[pair.test] == ("AB"[k % 2], "test")  # families alternate
        families = [roles[t][0] for t in pair.train]
        assert sorted(families) == ["A", "A", "B", "B"]
        assert all(roles[t][1] == "train" for t in pair.train)
        assert not set(pair.train) & set(tests)  # a test task never trains any pair


def test_task_names_say_nothing_about_family_or_role():
    db = generate(SMALL)
    names = [t["task"] for t in db.tasks]
    assert sorted(names) == [f"task{i:02d}" for i in range(1, 11)]
    assert names != sorted(names)  # generation order (family A first) is not name order


def test_same_design_same_database_and_another_seed_another(tmp_path):
    a, b = generate(SMALL), generate(SMALL)
    assert a.observations.equals(b.observations) and a.configs == b.configs and a.pairs == b.pairs
    first = generate_database(tmp_path / "a", SMALL)
    second = generate_database(tmp_path / "b", SMALL)
    for name in ("observations.parquet", "configs.jsonl", "train_test_pairs.json", SPACE_FILE, "tasks.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other = generate(SyntheticDesign(**{**SMALL.__dict__, "seed": 4}))
    assert not np.allclose(other.observations[METRIC], a.observations[METRIC])


def test_configs_are_a_latin_hypercube_in_the_unit_encoding():
    db = generate(SMALL)
    # one config per 1/n stratum of every numeric coordinate (integer rounding can move one stratum)
    strata = np.floor(db.Z * SMALL.n_configs).astype(int)
    for j, name in enumerate(NUMERIC):
        distinct = len(set(strata[:, j]))
        assert distinct >= (SMALL.n_configs - 3 if name == "batch_size" else SMALL.n_configs), name
    optimizers = [c["optimizer"] for c in db.configs]
    assert optimizers.count("adam") == optimizers.count("sgd") == SMALL.n_configs // 2


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"families": 3}, "opposed families need families = 2"),
        ({"n_pairs": 11}, "11 pairs need 11 test tasks"),
        ({"train_per_family": 5}, "exceeds train_members"),
        ({"n_epochs": 0}, "n_epochs must be a positive integer"),
        ({"lengthscales": (0.3, 0.3)}, "lengthscales must be 4 positive numbers"),
        ({"delta": 0.6}, "delta must lie in"),
    ],
)
def test_bad_designs_are_refused_in_one_line(changes, message):
    with pytest.raises(ConfigurationError, match=message):
        generate(SyntheticDesign(**changes))


# ---------------------------------------------------------------------- formulas
def test_family_landscape_is_the_gaussian_bump_of_its_formula():
    centre = np.array([0.2, 0.4, 0.6, 0.8])
    ls = np.array([0.1, 0.2, 0.3, 0.4])
    Z = np.array([centre, centre + [0.1, 0, 0, 0], centre + [0, 0, 0, 0.4], centre - [0.1, 0.2, 0, 0]])
    np.testing.assert_allclose(family_landscape(Z, centre, ls), [1.0, np.exp(-0.5), np.exp(-0.5), np.exp(-1.0)])


def test_saturation_maps_the_unit_interval_onto_itself_concavely():
    g = np.linspace(0, 1, 11)
    np.testing.assert_allclose(saturate(g, 0.0), g)
    s = saturate(g, 8.0)
    assert s[0] == pytest.approx(0.0) and s[-1] == pytest.approx(1.0)
    assert np.all(np.diff(s) > 0) and np.all(np.diff(s, 2) < 0)
    assert saturate(np.array([0.5]), 2.0)[0] == pytest.approx((1 - np.exp(-1)) / (1 - np.exp(-2)))


def test_curve_fraction_follows_its_formula_on_epochs_one_to_E():
    fraction = curve_fraction(np.arange(1, 4), np.array([1.0, 2.0]), alpha=2.0)
    assert fraction.shape == (2, 3)
    np.testing.assert_allclose(fraction[0], 1 - (1 + np.arange(1, 4) / 1.0) ** -2.0)
    assert fraction[1, 1] == pytest.approx(1 - 2.0**-2)  # e = beta: 1 - 2^-alpha


def test_curves_follow_the_asymptote_and_pace_of_the_truth():
    """Observed means agree with y0 + (A - y0) * fraction(e) at every epoch, e counted from 1."""
    db = generate(SMALL)
    chance = {t["task"]: t["chance"] for t in db.tasks}
    epochs = np.arange(1, SMALL.n_epochs + 1)
    for task, truth in db.truth.items():
        obs = db.observations[db.observations["task"] == task]
        mean = obs.groupby(["config_id", "epoch"])[METRIC].mean().unstack("epoch").to_numpy()
        expected = chance[task] + (truth["asymptote"] - chance[task])[:, None] * curve_fraction(epochs, truth["beta"], SMALL.alpha)
        residual = mean - np.clip(expected, 0, 1)
        # run noise (0.005) and epoch noise (0.006) averaged over 2 seeds: s.d. about 0.0055
        assert abs(residual.mean()) < 0.003 and residual.std() < 0.009, task


def test_pace_follows_its_formula_across_tasks():
    """log beta_tc - log beta_t'c = log(r_t / r_t') - quality_speed * (L_tc - L_t'c): the config's own
    pace cancels, and a config that is better on t than on t' trains faster on t."""
    db = generate(SMALL)
    info = {t["task"]: t for t in db.tasks}
    level = {t: (db.truth[t]["asymptote"] - info[t]["base"]) / info[t]["height"] for t in db.truth}
    a = next(t["task"] for t in db.tasks if t["family"] == "A")
    b = next(t["task"] for t in db.tasks if t["family"] == "B")
    y = np.log(db.truth[a]["beta"]) - np.log(db.truth[b]["beta"])
    expected = np.log(info[a]["pace"] / info[b]["pace"]) - SMALL.quality_speed * (level[a] - level[b])
    np.testing.assert_allclose(y, expected, atol=1e-12)


# ---------------------------------------------------------------------- the identifiability design
def test_opposed_families_rank_configs_in_opposite_ways(default_db):
    best = finals(default_db)
    family = {t["task"]: t["family"] for t in default_db.tasks}
    tasks = sorted(best)
    within, across = [], []
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            (within if family[a] == family[b] else across).append(spearmanr(best[a], best[b])[0])
    assert np.median(across) < -0.8 and max(across) < -0.7
    assert min(within) > 0.9


def test_opposed_family_centres_and_optimizers_are_mirrored(default_db):
    np.testing.assert_allclose(default_db.centres[0] + default_db.centres[1], 1.0)
    assert np.all(np.abs(default_db.centres - 0.5) == pytest.approx(0.5))
    assert sorted(default_db.preferred) == [0, 1]
    # each member's best config lies on its family's side of the cube, in the landscape's metric
    family = {t["task"]: t["family"] for t in default_db.tasks}
    side = (default_db.centres[0] - 0.5) / np.square(default_db.design.lengthscales)
    for task, truth in default_db.truth.items():
        z_best = default_db.Z[np.argmax(truth["asymptote"])]
        assert np.sign(np.dot(z_best - 0.5, side)) == (1 if family[task] == "A" else -1), task


def test_zero_shot_ranking_is_mediocre_for_both_families(default_db):
    """The mean rank over A and B members favours configs that neither family ranks near its top."""
    best = finals(default_db, seed=0)
    ranks = {t: np.argsort(np.argsort(-v)) for t, v in best.items()}
    pair = default_db.pairs[0]
    mean_rank = np.mean([ranks[t] for t in pair["train"]], axis=0)
    top = np.argsort(mean_rank)[:3]
    for task in pair["train"] + [pair["test"]]:
        assert ranks[task][top].min() >= 5, task


def test_early_epochs_inform_the_final_ranking_without_deciding_it(default_db):
    obs = default_db.observations[default_db.observations["seed"] == 0]
    best = finals(default_db, seed=0)
    at = {e: [] for e in (1, 5, 25)}
    crossed = 0
    for task in default_db.truth:
        grid = obs[obs["task"] == task].pivot(index="config_id", columns="epoch", values=METRIC).to_numpy()
        for e in at:
            at[e].append(spearmanr(grid[:, e - 1], best[task])[0])
        crossed += int(np.argmax(grid[:, 4]) != np.argmax(best[task]))
    assert 0.5 < np.median(at[1]) < 0.85  # informative but far from decisive at epoch 1
    assert np.median(at[1]) < np.median(at[5]) < np.median(at[25]) < 0.999
    assert crossed >= 3  # the leader at epoch 5 is not always the final best


def test_non_opposed_families_take_distinct_corners():
    db = generate(SyntheticDesign(opposed=False, families=3, train_members=2, test_members=1, n_pairs=3, n_configs=20, n_epochs=5))
    corners = {tuple(c) for c in db.centres}
    assert len(corners) == 3 and all(set(c) <= {0.0, 1.0} for c in corners)
    assert {t["family"] for t in db.tasks} == {"A", "B", "C"}
