"""`siamese` end to end through Kedro on tiny settings, every output in a tmp folder."""

import json

import mlflow
import pandas as pd
import pytest

from tests.conftest import ROOT, run_pipeline

TINY = {
    "family": {"preset": "mnist1d_mlp", "n_tasks": 8, "n_heldout": 2,
               "overrides": {"factors": {"input_scale": [0.1, 10.0], "label_noise": [0.0, 0.3], "n_train": [80]}, "epochs": 2, "n_val": 50}},
    "catalog": {"n_configs": 4, "target_distance": "rank_l1", "database": None},
    "network": {"beta": 2, "tau": 8, "iterations": 5, "seeds": [0, 1], "draws": 2, "hidden": 4, "channels": [2, 2], "fc_units": [4, 4]},
    "bo": {"k": 2, "evaluations": 4, "repetitions": 2, "n_random_init": 2, "num_restarts": 1, "raw_samples": 16, "maxiter": 5,
           "target_evaluations": 3,
           "variants": {"random_ucb": False, "siamese_prior_ucb": False, "siamese_init_ei": False}},
    "progress": False,
}
OUTPUTS = ["siamese_family.csv", "siamese_target_distances.csv", "siamese_target_heatmap.png", "siamese_spearman.csv",
           "siamese_spearman_summary.csv", "siamese_retrievals.csv", "siamese_retrieval_regret.csv", "siamese_retrieval_regret_summary.csv", "siamese_algorithm1_loss.png", "siamese_bo_curves.csv",
           "siamese_bo_best_so_far.png", "siamese_summary.md", "siamese_targets.json"]


def test_siamese_pipeline_end_to_end(tmp_path):
    before = {p for p in (ROOT / "data").rglob("*")}
    run_pipeline("siamese", tmp_path, {"siamese": TINY})
    out = tmp_path / "data" / "08_reporting"
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    family = pd.read_csv(out / "siamese_family.csv")
    assert len(family) == 8 and (family["role"] == "held_out").sum() == 2
    assert set(family["input_scale"]) == {0.1, 10.0} and set(family["label_noise"]) == {0.0, 0.3} and set(family["wing_input"]) == {"1x1x40"}
    distances = pd.read_csv(out / "siamese_target_distances.csv")
    assert len(distances) == 8 * 7 // 2 and (distances["target_distance"] >= 0).all() and (distances["target_distance"] <= 1).all()  # rank_l1
    regret = pd.read_csv(out / "siamese_retrieval_regret_summary.csv")
    held = regret[regret["split"] == "held_out"].set_index("comparison")
    assert {"learned", "handcrafted", "random", "oracle", "learned - handcrafted", "learned - random"} <= set(held.index)
    assert held.loc["learned", "n"] == 2 * 2 and (held.loc[["learned", "handcrafted", "random", "oracle"], "regret_mean"] >= 0).all()
    assert set(regret["split"]) == {"held_out", "train_loo"}
    spearman = pd.read_csv(out / "siamese_spearman.csv")
    assert sorted(spearman["seed"].unique()) == [0, 1] and set(spearman["meta_features"]) == {"learned", "handcrafted"}
    results = pd.read_parquet(tmp_path / "data" / "07_model_output" / "siamese_results.parquet")
    assert set(results["variant"]) == {"random_ei", "siamese_prior_ei", "handcrafted_prior_ei"}
    assert len(results) == 3 * 2 * 4
    # best-so-far never rises, and the neighbour variants start from the neighbours' best configs
    for _, run in results.groupby(["variant", "repetition"]):
        assert run["best_error"].is_monotonic_decreasing
    assert (results.loc[results["variant"] == "siamese_prior_ei", "neighbours"].str.split().str.len() == 2).all()
    checks = json.loads((out / "siamese_targets.json").read_text())
    assert checks["bo"]["within"] == 3 and checks["bo"]["at"] == 4 and checks["target_distance"] == "rank_l1"
    assert checks["retrieval"]["learned_minus_random"] == held.loc["learned - random", "regret_mean"]
    assert "Retrieval regret" in (out / "siamese_summary.md").read_text()
    # the catalog was built by the train stage and is a loadable database of all 8 datasets
    from transfertune.core.catalog import ObservationCatalog

    folder = tmp_path / "data" / "03_primary" / "siamese_catalog"
    catalog = ObservationCatalog.load(folder, folder / "space.yml", "val_acc")
    assert len(catalog.tasks) == 8 and len(catalog.config_ids) == 4 and catalog.max_epoch == 2
    assert {p for p in (ROOT / "data").rglob("*")} == before

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    run = runs[runs["tags.kedro.pipeline"] == "siamese"].iloc[0]
    assert run["params.siamese.network.iterations"] == "5"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id, "siamese")}
    assert {"siamese/target_heatmap.png", "siamese/bo_best_so_far.png", "siamese/spearman_summary.csv", "siamese/retrieval_regret_summary.csv"} <= artifacts
    assert "metrics.siamese.retrieval_regret.held_out.learned_minus_handcrafted" in runs.columns


def test_siamese_pipeline_reports_a_bad_parameter(tmp_path):
    from transfertune.errors import ConfigurationError

    with pytest.raises(Exception) as info:
        run_pipeline("siamese", tmp_path, {"siamese": {**TINY, "network": {"taus": 3}}, "mlflow": {"enabled": False}})
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, ConfigurationError) and "taus" in str(e) for e in chain if e is not None)
