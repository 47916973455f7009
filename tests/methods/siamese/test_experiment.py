"""The experiment's pieces that are not a paper formula: the grid, parameters, summaries, the target check."""

import numpy as np
import pandas as pd
import pytest

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.siamese import experiment as ex


TINY_FAMILY = {"preset": "mnist1d_mlp", "n_tasks": 5, "n_heldout": 1,
               "overrides": {"factors": {"input_scale": [0.1, 10.0], "n_train": [80]}, "epochs": 2, "n_val": 50}}


def test_the_catalog_configs_are_the_papers_100_lhs_configs_of_the_familys_space():
    p = ex.parse_params({"catalog": {"output_dir": "x"}, "bo": {"store_dir": "y", "variants": {"random_ei": {}}}})
    assert p.family.preset == "mnist1d_scale" and p.catalog.n_configs == 100 and p.catalog.target_distance == "rank_l1"
    spec = ex.family_spec(p)
    space_file, configs = ex.catalog_configs(p, spec)
    space = SearchSpace.from_yaml(space_file)
    assert spec.model == "mlp_sgd" and space.name == "mlp_sgd_wide" and len(space.hyperparameters) == 7 and len(configs) == 100
    X = space.encode(configs)
    # Latin hypercube: each of the 100 strata of every continuous hyperparameter holds exactly one config
    for j, name in enumerate(space.names):
        if name in ("lr", "momentum", "weight_decay", "dropout"):
            assert sorted(np.floor(np.clip(X[:, j], 0, 1 - 1e-12) * 100).astype(int).tolist()) == list(range(100)), name
    assert ex.catalog_configs(p, spec)[1] == configs  # seeded
    assert ex.train_settings(p, spec).model == "mlp_sgd" and ex.train_settings(p, spec).epochs == spec.epochs


def test_wing_inputs_are_images_and_signals_as_one_row_images():
    assert ex.wing_images(np.zeros((5, 40))).shape == (5, 1, 1, 40)
    assert ex.wing_images(np.zeros((5, 8, 8))).shape == (5, 1, 8, 8)
    assert ex.wing_images(np.zeros((5, 3, 8, 8))).shape == (5, 3, 8, 8)
    with pytest.raises(ConfigurationError, match="shape"):
        ex.wing_images(np.zeros(5))


def test_parameters_name_the_bad_key():
    base = {"catalog": {"output_dir": "x"}, "bo": {"store_dir": "y", "variants": {"random_ei": {}}}}
    assert ex.parse_params(base).network.tau == 32
    with pytest.raises(ConfigurationError, match=r"siamese.network.taus"):
        ex.parse_params({**base, "network": {"taus": 3}})
    with pytest.raises(ConfigurationError, match=r"siamese.bo.variants.random_ei.retrieval"):
        ex.parse_params({**base, "bo": {"store_dir": "y", "variants": {"random_ei": {"retrieval": "magic"}}}})
    with pytest.raises(ConfigurationError, match="variants is empty"):
        ex.parse_params({**base, "bo": {"store_dir": "y", "variants": {"random_ei": False}}})


def curves_of(rows):
    results = pd.DataFrame(rows, columns=["variant", "repetition", "evaluation", "best_error"])
    return ex.bo_curves(results)


def test_bo_curves_average_over_repetitions_with_a_standard_error():
    curves = curves_of([("a", 0, 1, 0.4), ("a", 1, 1, 0.2), ("a", 0, 2, 0.3), ("a", 1, 2, 0.1)])
    assert curves["best_error_mean"].tolist() == pytest.approx([0.3, 0.2])
    assert curves["se"].iloc[0] == pytest.approx(np.std([0.4, 0.2], ddof=1) / np.sqrt(2)) and curves["n"].tolist() == [2, 2]


def test_bo_target_asks_for_10_evaluations_by_default():
    rows = [("random_ei", 0, e, 0.5 - 0.01 * e) for e in range(1, 21)] + [("siamese_prior_ei", 0, e, 0.3) for e in range(1, 21)]
    target = ex.bo_target(curves_of(rows))
    assert target["within"] == 10 and target["at"] == 20 and target["met"] and target["first_evaluation"] == 1
    assert ex.parse_params({"catalog": {"output_dir": "x"}, "bo": {"store_dir": "y", "variants": {"random_ei": {}}}}).bo.target_evaluations == 10


def test_bo_target_finds_the_first_evaluation_at_the_reference_level():
    rows = [("random_ei", 0, e, v) for e, v in zip(range(1, 5), [0.5, 0.4, 0.3, 0.2])]
    rows += [("siamese_prior_ei", 0, e, v) for e, v in zip(range(1, 5), [0.3, 0.2, 0.2, 0.1])]
    curves = curves_of(rows)
    hit = ex.bo_target(curves, at=4, within=2)
    assert hit["reference_error"] == pytest.approx(0.2) and hit["first_evaluation"] == 2 and hit["met"]
    assert hit["error_at_within"] == pytest.approx(0.2)
    miss = ex.bo_target(curves, at=4, within=1)
    assert miss["first_evaluation"] == 2 and not miss["met"]
    never = ex.bo_target(curves_of(rows[:4] + [("siamese_prior_ei", 0, e, 0.25) for e in range(1, 5)]), at=4, within=4)
    assert never["first_evaluation"] is None and not never["met"]


def test_spearman_summary_reports_the_learned_minus_handcrafted_gap():
    table = pd.DataFrame({"seed": [0, 0, 1, 1], "meta_features": ["learned", "handcrafted"] * 2, "per_dataset": [0.5, 0.2, 0.3, 0.2],
                          "pooled": [0.4, 0.1, 0.2, 0.1], "train_pairs": [0.9, 0.3, 0.8, 0.3]})
    summary = ex.spearman_summary(table).set_index("meta_features")
    assert summary.loc["learned", "per_dataset_mean"] == pytest.approx(0.4)
    assert summary.loc["learned", "per_dataset_se"] == pytest.approx(np.std([0.5, 0.3], ddof=1) / np.sqrt(2))
    assert summary.loc["learned - handcrafted", "per_dataset_mean"] == pytest.approx(0.2)


def test_the_family_is_a_preset_with_overrides_and_held_out_tasks():
    base = {"family": TINY_FAMILY, "catalog": {"output_dir": "x"}, "bo": {"store_dir": "y", "variants": {"random_ei": {}}}}
    family = ex.make_family(ex.parse_params(base))
    assert len(family.members) == 5 and len(family.held_out) == 1 and len(family.train) == 4
    assert family.spec.epochs == 2 and family.spec.model == "mlp_sgd"
    assert {a.shape[1:] for a in family.images.values()} == {(1, 1, 40)}
    np.testing.assert_array_equal(family.images[family.train[0]][:, 0, 0, :], family[family.train[0]].raw_train)
    table = family.table()
    assert {"input_scale", "n_train", "role"} <= set(table.columns) and set(table["input_scale"]) == {0.1, 10.0}
    with pytest.raises(ConfigurationError, match="unknown task family 'nope'"):
        ex.make_family(ex.parse_params({**base, "family": {"preset": "nope"}}))
    with pytest.raises(ConfigurationError, match="n_heldout must be in 1..3"):
        ex.make_family(ex.parse_params({**base, "family": {**TINY_FAMILY, "n_heldout": 4}}))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 5-task MNIST-1D family and its catalog (4 configs, 2 epochs)."""
    folder = tmp_path_factory.mktemp("siamese")
    raw = {"family": TINY_FAMILY, "catalog": {"output_dir": str(folder / "catalog"), "n_configs": 4},
           "bo": {"store_dir": str(folder / "bo"), "variants": {"random_ei": {}}}, "progress": False}
    p = ex.parse_params(raw)
    family = ex.make_family(p)
    return p, family, ex.make_catalog(family, p), folder


def test_a_live_run_resumes_from_its_store_without_training_again(tiny, monkeypatch):
    from transfertune.methods.siamese.bo import SiameseBO
    from transfertune.training import objective

    p, family, catalog, folder = tiny
    task = family[family.held_out[0]].task
    options = dict(neighbours=family.train[:2], prior_mean=True, num_restarts=1, raw_samples=8, maxiter=5)
    first = ex.live_bo(SiameseBO(**options), task, catalog, family.train, ex.train_settings(p, family.spec), 3, 0, 0, folder / "store")
    assert first["evaluation"].tolist() == [1, 2, 3] and first["best_error"].is_monotonic_decreasing
    trained = []
    original = objective.train_to

    def counting(*args, **kwargs):
        progress = original(*args, **kwargs)
        trained.append(progress.trained)
        return progress

    monkeypatch.setattr(objective, "train_to", counting)
    again = ex.live_bo(SiameseBO(**options), task, catalog, family.train, ex.train_settings(p, family.spec), 3, 0, 0, folder / "store")
    assert trained == [0, 0, 0]
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), again.drop(columns="seconds"))


def test_the_store_key_changes_with_what_decides_the_trials(tiny):
    p, family, _, _ = tiny
    variant, settings = ex.VariantParams(retrieval="learned", prior_mean=True), ex.train_settings(p, family.spec)
    key = ex.run_key("d", ["a", "b"], variant, p.bo, 0, settings)
    assert key == ex.run_key("d", ["a", "b"], variant, p.bo, 0, settings)
    assert key != ex.run_key("d", ["a", "c"], variant, p.bo, 0, settings)
    assert key != ex.run_key("d", ["a", "b"], variant, p.bo, 1, settings)
    assert key != ex.run_key("d", ["a", "b"], ex.VariantParams(retrieval="learned"), p.bo, 0, settings)
    assert key == ex.run_key("d", ["a", "b"], variant, p.bo.model_copy(update={"repetitions": 9}), 0, settings)


def test_too_few_images_for_tau_fails_before_training(tiny):
    p, family, catalog, _ = tiny
    targets = ex.target_matrix(family, catalog, p)
    small = p.model_copy(update={"network": p.network.model_copy(update={"tau": 500})})
    with pytest.raises(ConfigurationError, match=r"dataset '.*' has \d+ images, fewer than tau=500"):
        ex.learn_metafeatures(family, targets, small)


def test_a_model_setting_missing_from_space_and_fixed_is_one_line(tiny):
    p, family, _, folder = tiny
    bare = ex.Family(family.spec.replace(space="conf/base/spaces/siamese_mlp.yml"), family.members, family.train, family.held_out, family.images)
    other = p.model_copy(update={"catalog": p.catalog.model_copy(update={"output_dir": str(folder / "other")})})
    with pytest.raises(ConfigurationError, match="model 'mlp_sgd' needs 'hidden_units' from the space or from the family's fixed settings"):
        ex.make_catalog(bare, other)


def test_target_matrix_uses_the_named_distance_on_the_catalog_mappings(tiny):
    p, family, catalog, _ = tiny
    names = family.train + family.held_out
    maps = ex.mappings(catalog, names)
    for kind in ("l1", "zscore_l1", "rank_l1"):
        targets = ex.target_matrix(family, catalog, p, kind)
        assert targets.kind == kind and targets.names == names
        np.testing.assert_allclose(targets.maps, maps)
        np.testing.assert_allclose(targets.matrix, ex.target_distances(maps, names, kind=kind))
    assert ex.target_matrix(family, catalog, p).kind == p.catalog.target_distance == "rank_l1"


def test_paired_gaps_subtract_the_reference_within_each_repetition():
    rows = [("random_ei", 0, 1, 0.5), ("random_ei", 1, 1, 0.1), ("x", 0, 1, 0.4), ("x", 1, 1, 0.2)]
    results = pd.DataFrame(rows, columns=["variant", "repetition", "evaluation", "best_error"])
    gaps = ex.paired_gaps(results, "random_ei")
    assert gaps["variant"].tolist() == ["x"] and gaps["gap_mean"].iloc[0] == pytest.approx(0.0)
    assert gaps["gap_se"].iloc[0] == pytest.approx(np.std([-0.1, 0.1], ddof=1) / np.sqrt(2))


def test_seed_spread_retrains_the_best_grid_configs(tiny):
    p, family, catalog, _ = tiny
    table = ex.seed_spread(family, catalog, p, family.held_out, top=2, seeds=2)
    assert table["dataset"].tolist() == family.held_out
    assert table["best_catalog_val_acc"].iloc[0] == pytest.approx(np.nanmax(catalog.grid(family.held_out[0])[:, -1]))
    assert (table["seed_std_of_top_configs"] >= 0).all() and 1 <= table["catalog_configs_within_2_val_examples"].iloc[0] <= 4


def fake_experiment():
    """Two held-out and three training datasets over 3 configs, with hand-set distances."""
    train, held = ["a", "b", "c"], ["h0", "h1"]
    maps = np.array([[0.9, 0.1, 0.2],    # a: best config 0
                     [0.1, 0.8, 0.2],    # b: best config 1
                     [0.1, 0.2, 0.7],    # c: best config 2
                     [0.3, 0.5, 0.9],    # h0: values of a's, b's, c's best: 0.3, 0.5, 0.9
                     [0.6, 0.4, 0.2]])   # h1: 0.6, 0.4, 0.2
    targets = ex.Targets(train + held, np.zeros((5, 5)), maps)
    targets.matrix = ex.target_distances(maps, targets.names)
    family = ex.Family(None, [], train, held, {})
    run = lambda seed, learned, learned_train: ex.MetaFeatureRun(seed, None, np.array(learned, float), np.array(learned_train, float))
    lt = [[0, 1, 2], [1, 0, 3], [2, 3, 0]]  # a's nearest other: b; b's: a; c's: a
    runs = [run(0, [[3, 2, 1], [1, 2, 3]], lt),   # seed 0: h0 -> c, h1 -> a (both best)
            run(1, [[1, 2, 3], [3, 2, 1]], lt)]   # seed 1: h0 -> a (regret 0.6), h1 -> c (0.4)
    hand = np.array([[2, 1, 3], [2, 1, 3]], float)  # both -> b: h0 regret 0.4, h1 regret 0.2
    return family, targets, ex.MetaFeatures(runs, hand, np.array(lt, float))


def test_retrieval_regret_table_has_known_answers():
    family, targets, features = fake_experiment()
    table = ex.retrieval_regret_table(family, targets, features, k=1)
    held = table[table["split"] == "held_out"].set_index(["dataset", "retrieval", "seed"])["regret"]
    assert held[("h0", "learned", 0)] == pytest.approx(0.0) and held[("h1", "learned", 0)] == pytest.approx(0.0)
    assert held[("h0", "learned", 1)] == pytest.approx(0.6) and held[("h1", "learned", 1)] == pytest.approx(0.4)
    hand = table[(table["split"] == "held_out") & (table["retrieval"] == "handcrafted")].set_index("dataset")["regret"]
    assert hand["h0"] == pytest.approx(0.4) and hand["h1"] == pytest.approx(0.2)
    rnd = table[(table["split"] == "held_out") & (table["retrieval"] == "random")].set_index("dataset")["regret"]
    assert rnd["h0"] == pytest.approx(0.9 - (0.3 + 0.5 + 0.9) / 3) and rnd["h1"] == pytest.approx(0.6 - 0.4)
    # leave-one-out on the training datasets: a retrieves b (a's value of b's best config 0.1: regret 0.8)
    loo = table[(table["split"] == "train_loo") & (table["retrieval"] == "learned") & (table["seed"] == 0)].set_index("dataset")
    assert loo.loc["a", "neighbours"] == "b" and loo.loc["a", "regret"] == pytest.approx(0.8)
    assert loo.loc["c", "neighbours"] == "a" and loo.loc["c", "regret"] == pytest.approx(0.7 - 0.1)
    loo_random = table[(table["split"] == "train_loo") & (table["retrieval"] == "random")].set_index("dataset")["regret"]
    assert loo_random["a"] == pytest.approx(0.9 - (0.1 + 0.2) / 2)  # b's and c's best configs on a: 0.1, 0.2

    summary = ex.retrieval_summary(table).set_index(["split", "comparison"])
    assert summary.loc[("held_out", "learned"), "regret_mean"] == pytest.approx(0.25) and summary.loc[("held_out", "learned"), "n"] == 4
    # paired over held-out x seeds: learned - handcrafted = [-0.4, -0.2, +0.2, +0.2]
    diffs = np.array([-0.4, -0.2, 0.2, 0.2])
    assert summary.loc[("held_out", "learned - handcrafted"), "regret_mean"] == pytest.approx(diffs.mean())
    assert summary.loc[("held_out", "learned - handcrafted"), "regret_se"] == pytest.approx(diffs.std(ddof=1) / 2)
    rdiff = np.array([0.0 - rnd["h0"], 0.0 - rnd["h1"], 0.6 - rnd["h0"], 0.4 - rnd["h1"]])
    assert summary.loc[("held_out", "learned - random"), "regret_mean"] == pytest.approx(rdiff.mean())
    target = ex.retrieval_target(summary.reset_index())
    assert target["learned_minus_handcrafted"] == pytest.approx(-0.05) and target["learned_minus_random"] == pytest.approx(-0.05 / 3)
    assert target["met"]
    worse = summary.reset_index()
    worse.loc[(worse["split"] == "held_out") & (worse["comparison"] == "learned - random"), "regret_mean"] = 0.01
    assert not ex.retrieval_target(worse)["met"]


def test_the_default_catalog_is_read_from_the_shipped_database_not_trained(tmp_path):
    """The defaults' mappings (mnist1d_scale's first tasks, 100 LHS configs, 10 epochs, seed 0) are
    trials of data/01_raw/mnist1d_scale: read there, nothing trained; other configs: one line."""
    import yaml

    from tests.conftest import ROOT
    from transfertune.errors import ConfigurationError
    from transfertune.methods.siamese.experiment import make_catalog, make_family, parse_params

    params = yaml.safe_load((ROOT / "conf/base/parameters_siamese.yml").read_text())["siamese"]
    params["catalog"]["output_dir"] = str(tmp_path / "catalog")
    params["family"].update({"n_tasks": 3, "n_heldout": 1})
    p = parse_params(params)
    catalog = make_catalog(make_family(p), p)
    assert len(catalog.tasks) == 3 and len(catalog.config_ids) == 100 and catalog.max_epoch == 10
    assert not (tmp_path / "catalog" / "_trials").exists()  # nothing was trained
    params["catalog"]["config_seed"] = 1
    p = parse_params(params)
    with pytest.raises(ConfigurationError, match="siamese.catalog.database: .*config 0 differs.*database: null trains"):
        make_catalog(make_family(p), p)


def test_live_runs_in_worker_processes_give_the_rows_of_one_process(tiny):
    """``bo.n_jobs``: each job seeds its own searcher, GP fits and trainings, so two processes
    give the same rows, in the same order, as one (the stores are separate folders)."""
    p, family, catalog, folder = tiny
    n_held, n_train = len(family.held_out), len(family.train)
    distances = np.arange(n_held * n_train, dtype=float).reshape(n_held, n_train)[:, ::-1].copy()  # the last training tasks nearest
    features = ex.MetaFeatures(runs=[ex.MetaFeatureRun(0, None, distances, np.zeros((n_train, n_train)))],
                               handcrafted=distances[:, ::-1].copy(), handcrafted_train=np.zeros((n_train, n_train)))
    bo = {"k": 2, "evaluations": 3, "repetitions": 2, "n_random_init": 2, "num_restarts": 1, "raw_samples": 8, "maxiter": 5,
          "variants": {"random_ei": {}, "siamese_prior_ei": {"retrieval": "learned", "prior_mean": True}}}
    frames = {}
    for n_jobs in (1, 2):
        raw = {"family": TINY_FAMILY, "catalog": {"output_dir": str(folder / "catalog"), "n_configs": 4}, "network": {"seeds": [0]},
               "bo": {**bo, "n_jobs": n_jobs, "store_dir": str(folder / f"bo_jobs{n_jobs}")}, "progress": False}
        frames[n_jobs] = ex.run_bo(family, catalog, features, ex.parse_params(raw))
    one, two = (frames[n].drop(columns="seconds") for n in (1, 2))
    assert len(one) == 2 * 2 * 3 and one["variant"].tolist()[:3] == ["random_ei"] * 3
    assert set(one.loc[one["variant"] == "siamese_prior_ei", "neighbours"]) == {" ".join(family.train[::-1][:2])}
    pd.testing.assert_frame_equal(one, two)
