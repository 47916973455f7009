"""The experiment's pieces that are not a paper formula: the grid, parameters, summaries, the target check."""

import numpy as np
import pandas as pd
import pytest

from transfertune.core.spaces import SearchSpace
from transfertune.errors import ConfigurationError
from transfertune.methods.siamese import experiment as ex


def test_grid_configs_cover_the_corners_on_the_log_scale():
    space = SearchSpace.from_yaml(ex.resolve_path("conf/base/spaces/siamese_mlp.yml"))
    configs = ex.grid_configs(space, 5)
    assert len(configs) == 25
    assert {c["batch_size"] for c in configs} == {8, 19, 45, 108, 256}
    np.testing.assert_allclose(sorted({c["lr"] for c in configs}), np.geomspace(1e-4, 1e-1, 5))
    with pytest.raises(ConfigurationError, match="numeric"):
        ex.grid_configs(SearchSpace.from_dict({"hyperparameters": [{"name": "o", "type": "categorical", "choices": ["a", "b"]}]}), 2)


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


def test_mixed_image_shapes_need_image_shape(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(5):
        (tmp_path / "photos" / f"class{c}").mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(tmp_path / "photos" / f"class{c}" / f"{i}.png")
    sources = [{"source": "digits", "n_datasets": 2, "sizes": [20], "label_noise": [0.0], "corruptions": ["none"]},
               {"source": "image_folder", "source_options": {"path": str(tmp_path / "photos"), "grayscale": True}, "tag": "photos",
                "n_datasets": 1, "sizes": [10], "label_noise": [0.0], "corruptions": ["none"]}]
    base = {"family": {"sources": sources, "n_heldout": 1}, "catalog": {"output_dir": "x"}, "bo": {"store_dir": "y", "variants": {"random_ei": {}}}}
    with pytest.raises(ConfigurationError, match=r"dataset 'photos-cls-s0-000-n10-ln00-clean' has images of shape \(1, 12, 12\) but "
                                                 r"'digits-cls-s0-000-n20-ln00-clean' has \(1, 8, 8\); set siamese.network.image_shape"):
        ex.make_family(ex.parse_params(base))
    family = ex.make_family(ex.parse_params({**base, "network": {"image_shape": [1, 8, 8]}}))
    assert {a.shape[1:] for a in family.images.values()} == {(1, 8, 8)}
    assert family["photos-cls-s0-000-n10-ln00-clean"].task.input_shape == (1, 12, 12)  # the target model keeps the source's shape


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 5-dataset family and its catalog (2 x 2 grid, 2 epochs)."""
    folder = tmp_path_factory.mktemp("siamese")
    raw = {"family": {"sources": [{"source": "digits", "n_datasets": 5, "sizes": [20], "label_noise": [0.0, 0.3],
                                   "corruptions": ["none"]}], "n_heldout": 1},
           "catalog": {"output_dir": str(folder / "catalog"), "epochs": 2, "grid_points": 2},
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
    first = ex.live_bo(SiameseBO(**options), task, catalog, family.train, ex.train_settings(p), 3, 0, 0, folder / "store")
    assert first["evaluation"].tolist() == [1, 2, 3] and first["best_error"].is_monotonic_decreasing
    trained = []
    original = objective.train_to

    def counting(*args, **kwargs):
        progress = original(*args, **kwargs)
        trained.append(progress.trained)
        return progress

    monkeypatch.setattr(objective, "train_to", counting)
    again = ex.live_bo(SiameseBO(**options), task, catalog, family.train, ex.train_settings(p), 3, 0, 0, folder / "store")
    assert trained == [0, 0, 0]
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), again.drop(columns="seconds"))


def test_the_store_key_changes_with_what_decides_the_trials(tiny):
    p, family, _, _ = tiny
    variant, settings = ex.VariantParams(retrieval="learned", prior_mean=True), ex.train_settings(p)
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
    bare = p.model_copy(update={"catalog": p.catalog.model_copy(update={"fixed": {"n_layers": 1}, "output_dir": str(folder / "other")})})
    with pytest.raises(ConfigurationError, match="model 'mlp' needs 'hidden_units' from the space or from siamese.catalog.fixed"):
        ex.make_catalog(family, bare)


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
    assert table["best_grid_val_acc"].iloc[0] == pytest.approx(np.nanmax(catalog.grid(family.held_out[0])[:, -1]))
    assert (table["seed_std_of_top_configs"] >= 0).all() and 1 <= table["grid_configs_within_2_val_examples"].iloc[0] <= 4
