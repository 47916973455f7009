"""`metahpo` end to end through Kedro on tiny settings, every output in a tmp folder."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
import torch

from tests.conftest import ROOT, run_pipeline

TINY = {
    "progress": False,
    "execution": {"workers": 1},
    "experiments": {
        "synthetic_mlp": {
            "data": {"options": {"rows_per_batch": 300, "offline_batches": 2, "stream_batches": 3}},
            "max_epochs": 2,
        },
        "tabular_family": {"data": {"options": {"family": {"base_options": {"n_samples": 900}, "n_val": 100}}}, "max_epochs": 2},
        "mnist1d_family": {"data": {"options": {"family": {"base_options": {"num_samples": 700}, "n_val": 100}, "stream_batches": 3, "stream_rows": 300}},
                           "max_epochs": 2},
    },
    "sampling": {"rounds": 2, "subsets_per_round": 1, "ratio": 0.3, "probe_update_epochs": 1, "classifier": {"epochs": 2, "hidden": 8},
                 "attack": {"iterations": 3}},
    "bohb": {"trials_per_subset": 4, "min_epochs": 1},
    "hp_learner": {"steps": 3, "hidden": 8, "meta_latent": 4, "hp_latent": 4, "tasks_per_step": 1},
    "prediction": {"n_best_starts": 1, "n_random_starts": 1, "max_iter": 3},
    "baselines": {"gp_bo": {"raw_samples": 16, "num_restarts": 1}, "hyperband_subset_size": {"max_units": 3}},
    "out_of_sample": {"initial_configs": 2, "meta_subsets": 1, "update_steps": 2},
}
METHODS = {"metahpo", "metahpo_random", "bohb_incumbent", "random_search", "gp_bo", "hyperband_subset_size"}


@pytest.mark.slow
def test_metahpo_pipeline_end_to_end(tmp_path):
    before = {p for p in (ROOT / "data").rglob("*")}
    run_pipeline("metahpo", tmp_path, {"metahpo": TINY})
    out = tmp_path / "data" / "08_reporting"
    for name in ("metahpo_runs.csv", "metahpo_table1.csv", "metahpo_table1.md", "metahpo_table1.png", "metahpo_out_of_sample.csv",
                 "metahpo_out_of_sample_summary.csv", "metahpo_out_of_sample.png"):
        assert (out / name).stat().st_size > 0, name
    runs = pd.read_csv(out / "metahpo_runs.csv")
    assert set(runs["experiment"]) == {"mnist1d_family", "tabular_family"}  # the defaults (synthetic_mlp off since issue 30)
    assert set(runs["method"]) == METHODS
    # every baseline ran under Meta-HPO's wall clock (plus at most the epoch in flight at the deadline)
    for experiment, group in runs.groupby("experiment"):
        budget = float(group.loc[group["method"] == "metahpo", "seconds"].iloc[0])
        assert (group.loc[group["method"].isin(["random_search", "gp_bo", "hyperband_subset_size"]), "seconds"] < budget + 30).all()
    table = pd.read_csv(out / "metahpo_table1.csv")
    assert len(table) == 2 * len(METHODS)
    oos = pd.read_csv(out / "metahpo_out_of_sample.csv")
    assert set(oos["method"]) == {"metahpo", "random_search", "gp_bo", "static"}
    assert sorted(oos["eval_batch"].unique()) == [1, 2]

    store = tmp_path / "data" / "06_models" / "metahpo" / "mnist1d_family" / "run0" / "adversarial"
    state = torch.load(store / "probe.pt", weights_only=True)
    assert "state_dict" in state
    from transfertune.core.catalog import ObservationCatalog

    catalog = ObservationCatalog.load(store / "catalog", ROOT / "conf" / "base" / "spaces" / "mlp_sgd_wide.yml", "val_acc")
    assert len(catalog.observations["task"].unique()) == 2  # one task per proxy subset
    observations = pd.read_parquet(tmp_path / "data" / "03_primary" / "metahpo_observations.parquet")
    assert {"experiment", "strategy", "subset", "config", "epoch", "val_acc"} <= set(observations.columns)
    assert {p for p in (ROOT / "data").rglob("*")} == before

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs_ = mlflow.search_runs(experiment_names=["transfertune"])
    run = runs_[runs_["tags.kedro.pipeline"] == "metahpo"].iloc[0]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id, "metahpo")}
    assert {"metahpo/table1.csv", "metahpo/table1.png", "metahpo/out_of_sample.png"} <= artifacts


def test_metahpo_pipeline_reports_a_bad_parameter(tmp_path):
    from transfertune.errors import ConfigurationError

    with pytest.raises(Exception) as info:
        run_pipeline("metahpo", tmp_path, {"metahpo": {**TINY, "hp_learner": {"alphaa": 1.0}}, "mlflow": {"enabled": False}})
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, ConfigurationError) and "alphaa" in str(e) for e in chain if e is not None)
