"""`hypernet` end to end through Kedro on tiny settings, every output in a tmp folder."""

import mlflow
import pandas as pd
import pytest

from tests.conftest import ROOT, run_pipeline

TINY = {
    "progress": False,
    "data": {"n_train": 30, "n_val": 40, "n_test": 60},
    "global": {"hidden": 8, "steps": 30, "hyper_steps": 5},
    "local": {"steps": 20, "n_lambda": 4},
    "figure2": {"n_grid": 5, "n_trained": 3},
    "figure3": {"n_samples": 3, "n_test": 4, "pairs_steps": 10},
    "comparison": {"sizes": ["per_class"], "bo_trials": 3, "bo_startup_trials": 2},
}
OUTPUTS = ["hypernet_figure2.png", "hypernet_figure3.png", "hypernet_comparison.png", "hypernet_figure2_points.csv",
           "hypernet_figure3_points.csv", "hypernet_comparison.csv", "hypernet_summary.csv"]


def test_hypernet_pipeline_end_to_end(tmp_path):
    before = {p for p in (ROOT / "data").rglob("*")}
    run_pipeline("hypernet", tmp_path, {"hypernet": TINY})
    out = tmp_path / "data" / "08_reporting"
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    summary = pd.read_csv(out / "hypernet_summary.csv")
    assert list(summary.columns) == ["experiment", "method", "metric", "value"]
    assert set(summary.experiment) == {"figure2", "figure3", "comparison"}
    comparison = pd.read_csv(out / "hypernet_comparison.csv")
    assert list(comparison.method) == ["bayesopt (Optuna GP)", "local hyper-training, per_class", "retrained at lambda_hat, per_class"]
    # the parameters merged over conf/base (n_test) reached the library
    assert len(pd.read_csv(out / "hypernet_figure3_points.csv")) == 3 * 4
    assert {p for p in (ROOT / "data").rglob("*")} == before  # nothing written into the project's data/

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    run = runs[runs["tags.kedro.pipeline"] == "hypernet"].iloc[0]
    assert run["params.hypernet.local.steps"] == "20"
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run.run_id, "hypernet")}
    assert {"hypernet/figure2.png", "hypernet/figure3.png", "hypernet/comparison.png", "hypernet/summary.csv"} <= artifacts
    assert len(client.get_metric_history(run.run_id, "hypernet.figure2.local_lam_hat")) == 20


def test_hypernet_pipeline_reports_a_bad_parameter(tmp_path):
    from transfertune.errors import ConfigurationError

    with pytest.raises(Exception) as info:
        run_pipeline("hypernet", tmp_path, {"hypernet": {**TINY, "local": {"sigmaa": 1.0}}, "mlflow": {"enabled": False}})
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, ConfigurationError) and "sigmaa" in str(e) for e in chain if e is not None)
