"""`benchmark` end to end through Kedro, on a second database with another space, and the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import project_copy, run_kedro, run_pipeline
from transfertune.core.metrics import SUMMARY_COLUMNS
from transfertune.errors import MissingDependencyError
from transfertune.methods.registry import available_methods

PROJECT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_on_a_new_database_with_only_parameters(tmp_path, synthetic_db):
    params = {
        "database": {"path": str(synthetic_db), "space": str(synthetic_db / "space.yml"), "metric": "val_acc"},
        "benchmark": {"only": "random_search zero_shot", "budget": 12, "repetitions": 2, "n_jobs": 1,
                      "summary_qs": [4, 12], "progress": False},
    }
    run_pipeline("benchmark", tmp_path, params)
    summary = pd.read_csv(tmp_path / "data/08_reporting/benchmark_summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(summary.method) == {"random_search", "zero_shot"} and set(summary.q) == {4, 12}
    assert (summary.n == 4).all()  # 2 pairs x 2 repetitions
    results = pd.read_parquet(tmp_path / "data/07_model_output/benchmark_results.parquet")
    assert len(results) == 2 * 2 * 2 * 12
    assert (tmp_path / "data/08_reporting/benchmark_regret_rank.png").stat().st_size > 10_000
    assert "| zero_shot | 12 |" in (tmp_path / "data/08_reporting/benchmark_summary.md").read_text()

    # MLflow: one parent run with all parameters, nested runs per method and pair with curves
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    parent = runs[runs["tags.kedro.pipeline"] == "benchmark"].iloc[0]
    assert parent["params.benchmark.budget"] == "12" and parent["params.database.metric"] == "val_acc"
    nested = runs[runs["tags.mlflow.parentRunId"] == parent.run_id]
    assert len(nested) == 4 and set(nested["tags.method"]) == {"random_search", "zero_shot"}
    history = mlflow.MlflowClient().get_metric_history(nested.iloc[0].run_id, "regret")
    assert [m.step for m in history] == list(range(1, 13))
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.run_id)}
    assert {"summary.csv", "curves.csv", "regret_rank.png"} <= artifacts


def test_the_default_benchmark_names_every_registered_method():
    params = yaml.safe_load((PROJECT / "conf/base/parameters_benchmark.yml").read_text())["benchmark"]
    labels = set(params["methods"])
    # random_space_warm is random_space started from given configs: nothing to give it here
    assert labels | {"random_space_warm"} == set(available_methods()) and "random_space_warm" not in labels
    assert all(params["methods"][m].get("epochs") for m in ("hts", "hord", "source_order"))  # one trial: 4 epochs, not 75


def test_methods_missing_an_optional_package_are_skipped_with_one_line(monkeypatch):
    from transfertune.methods import registry

    def fake_make(label, params):
        if label == "needs_extra":
            raise MissingDependencyError("needs_extra needs Foo (pip install 'transfertune[foo]')")
    monkeypatch.setattr(registry, "make_method", fake_make)
    kept, skipped = registry.installed_methods({"zero_shot": {}, "needs_extra": {"k": 1}})
    assert kept == {"zero_shot": {}}
    assert skipped == ["skipping needs_extra: needs_extra needs Foo (pip install 'transfertune[foo]')"]


@pytest.mark.parametrize(
    "params, message",
    [
        ("benchmark.budget=0", "budget must be a positive integer"),
        ("database.path=/no/such/folder", "database folder /no/such/folder does not exist"),
        ("benchmark.only=zero_shot nope", "'only' must list labels of 'methods'"),
    ],
)
def test_cli_bad_input_is_one_clear_message(tmp_path, params, message):
    proc = run_kedro(["run", "--pipeline=benchmark", f"--params={params},mlflow.enabled=false"], project_copy(tmp_path / "project"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"Error: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr


def test_cli_malformed_space_yaml(tmp_path):
    bad = tmp_path / "space.yml"
    bad.write_text("hyperparameters:\n  - {name: lr, type: float, lower: 1, upper: 0}\n")
    proc = run_kedro(["run", "--pipeline=benchmark", f"--params=database.space={bad},mlflow.enabled=false"], project_copy(tmp_path / "project"))
    assert proc.returncode == 2 and "lower (1.0) must be below upper (0.0)" in proc.stderr


def failing_params(synthetic_db, n_jobs: int) -> dict:
    """zero_shot and a test double that raises numpy's LinAlgError on the pair of test task task0."""
    return {
        "database": {"path": str(synthetic_db), "space": str(synthetic_db / "space.yml"), "metric": "val_acc"},
        "benchmark": {"methods": {"broken": {"class": "tests.doubles.FailsOnPair", "fail_on": "task0"}},
                      "only": "zero_shot broken", "budget": 6, "n_jobs": n_jobs, "summary_qs": [6], "progress": False},
    }


def test_a_failing_episode_is_recorded_and_every_other_row_written(tmp_path, synthetic_db):
    from transfertune.errors import EpisodesFailed

    with pytest.raises(EpisodesFailed) as info:
        run_pipeline("benchmark", tmp_path, failing_params(synthetic_db, n_jobs=1))
    assert str(info.value) == ("1 of 4 episodes failed (every other episode's rows are written): broken on task0 (repetition 0): "
                               "LinAlgError: linalg.eigh: The algorithm failed to converge because the input matrix is ill-conditioned")
    results = pd.read_parquet(tmp_path / "data/07_model_output/benchmark_results.parquet")
    assert results.groupby(["method", "pair"]).size().to_dict() == {("broken", "task1"): 6, ("zero_shot", "task0"): 6, ("zero_shot", "task1"): 6}
    failures = pd.read_csv(tmp_path / "data/08_reporting/benchmark_failures.csv")
    assert failures[["method", "pair", "repetition"]].values.tolist() == [["broken", "task0", 0]]
    assert failures.error.item().startswith("LinAlgError: linalg.eigh")
    summary = pd.read_csv(tmp_path / "data/08_reporting/benchmark_summary.csv")
    assert summary.set_index("method").n.to_dict() == {"broken": 1, "zero_shot": 2}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    assert runs[runs["tags.kedro.pipeline"] == "benchmark"].status.tolist() == ["FAILED"]


def test_cli_a_failing_episode_in_a_worker_ends_the_run_with_one_line(tmp_path, synthetic_db):
    params = failing_params(synthetic_db, n_jobs=2)
    bench = params["benchmark"]
    cli_params = ",".join([
        f"database.path={synthetic_db}", f"database.space={synthetic_db / 'space.yml'}", "database.metric=val_acc", "mlflow.enabled=false",
        "benchmark.methods.broken.class=tests.doubles.FailsOnPair", "benchmark.methods.broken.fail_on=task0",
        f"benchmark.only={bench['only']}", "benchmark.budget=6", "benchmark.n_jobs=2", "benchmark.summary_qs=6", "benchmark.progress=false",
    ])
    project = project_copy(tmp_path / "project")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PROJECT / "src"), str(PROJECT)]))  # tests.doubles in the workers too
    proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipeline=benchmark", f"--params={cli_params}"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: 1 of 4 episodes failed (every other episode's rows are written): broken on task0 (repetition 0): "
                      "LinAlgError: linalg.eigh: The algorithm failed to converge because the input matrix is ill-conditioned"]
    assert "Traceback" not in proc.stderr
    results = pd.read_parquet(project / "data/07_model_output/benchmark_results.parquet")
    assert len(results) == 3 * 6
    assert len(pd.read_csv(project / "data/08_reporting/benchmark_failures.csv")) == 1
