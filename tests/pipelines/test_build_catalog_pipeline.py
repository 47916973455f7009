"""`build_catalog` end to end through Kedro on tiny settings, then a rerun that trains nothing."""

import json

import mlflow
import pandas as pd

from tests.conftest import ROOT, run_pipeline
from transfertune.core.catalog import ObservationCatalog


def test_build_catalog_writes_a_loadable_catalog_and_resumes(tmp_path):
    out = tmp_path / "catalog"
    params = {
        "build_catalog": {
            "output_dir": str(out),
            "space": str(ROOT / "conf" / "base" / "spaces" / "hts_cnn.yml"),
            "epochs": 2,
            "configs": {"method": "lhs", "n": 2, "seed": 0},
            "tasks": {"class_subsets": {"n_subsets": 3, "n_classes": 3, "n_per_class": 20, "seed": 0}},
            "progress": False,
        }
    }
    run_pipeline("build_catalog", tmp_path, params)

    assert {"observations.parquet", "configs.jsonl", "train_test_pairs.json", "space.yml", "failed_trials.parquet",
            "tasks.json", "catalog.json"} <= {p.name for p in out.iterdir()}
    obs = pd.read_parquet(out / "observations.parquet")
    assert set(obs.task) == {"digits-cls-s0-000", "digits-cls-s0-001", "digits-cls-s0-002"}
    assert len(obs) == 3 * 2 * 1 * 2 and obs.val_acc.between(0, 1).all()
    assert obs.groupby(["task", "config_id", "seed"]).epoch.apply(list).map(lambda e: e == [1, 2]).all()
    catalog = ObservationCatalog.load(out, out / "space.yml", "val_acc")
    assert catalog.summary()["tasks"] == 3 and catalog.summary()["configs"] == 2 and len(catalog.pairs) == 3
    tasks = json.loads((out / "tasks.json").read_text())
    assert all(len(t["classes"]) == 3 and t["n_train"] + t["n_val"] == 60 for t in tasks)

    run = json.loads((tmp_path / "data/08_reporting/build_catalog_run_info.json").read_text())
    assert (run["total"], run["completed"], run["skipped"]) == (6, 6, 0)
    table = pd.read_csv(tmp_path / "data/08_reporting/build_catalog_summary.csv")
    assert list(table.task) == sorted(set(obs.task)) and (table.trials == 2).all()
    assert (tmp_path / "data/08_reporting/build_catalog_learning_curves.png").stat().st_size > 10_000

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    first = runs[runs["tags.kedro.pipeline"] == "build_catalog"].iloc[0]
    history = mlflow.MlflowClient().get_metric_history(first.run_id, "trials_done")
    assert [m.value for m in history] == [1, 2, 3, 4, 5, 6]
    assert first["metrics.trials_failed_total"] == 0 and first["metrics.throughput_trials_per_minute"] > 0

    run_pipeline("build_catalog", tmp_path, params)  # same parameters: every trial is already stored
    run = json.loads((tmp_path / "data/08_reporting/build_catalog_run_info.json").read_text())
    assert (run["total"], run["skipped"], run["completed"]) == (6, 6, 0)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "observations.parquet"), obs)


def test_build_catalog_from_a_task_family(tmp_path):
    out = tmp_path / "family_catalog"
    family = {"preset": "tabular_mlp", "seed": 3, "n_tasks": 2, "factors": {"n_train": [40], "label_noise": [0.0, 0.2]}, "n_val": 30}
    params = {
        "build_catalog": {
            "output_dir": str(out), "model": "mlp_sgd", "epochs": 1, "configs": {"method": "lhs", "n": 2, "seed": 0},
            "tasks": {"from": "family", "family": family}, "progress": False,
        }
    }
    run_pipeline("build_catalog", tmp_path, params)
    catalog = ObservationCatalog.load(out, out / "space.yml", "val_acc")
    from transfertune.data.families import build_family, spec_from_params

    expected = [t.name for t in build_family(spec_from_params({k: v for k, v in family.items() if k != "seed"}), seed=3)]
    assert catalog.tasks == sorted(expected) and catalog.summary()["configs"] == 2
    assert (out / "space.yml").read_text() == (ROOT / "conf/base/spaces/mlp_sgd.yml").read_text()
