"""The MLflow hook: where a store keeps its artifacts, and the link a run ends with."""

import logging

import mlflow

from tests.conftest import run_pipeline
from transfertune import hooks
from transfertune.hooks import artifact_location, resolve_tracking_uri, run_page_url


def test_artifacts_of_a_sqlite_store_sit_beside_its_database(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert artifact_location(uri, "mlartifacts") == (tmp_path / "store" / "mlartifacts").as_uri()
    assert artifact_location(uri, None) == (tmp_path / "store" / "mlartifacts").as_uri()
    assert artifact_location(uri, "../shared/art") == (tmp_path / "shared" / "art").as_uri()
    assert artifact_location(uri, str(tmp_path / "elsewhere")) == (tmp_path / "elsewhere").as_uri()


def test_the_default_store_keeps_its_artifacts_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = resolve_tracking_uri(None, tmp_path / "project")
    assert uri == f"sqlite:///{tmp_path / 'project' / 'mlflow.db'}"
    assert artifact_location(uri, "mlartifacts") == (tmp_path / "project" / "mlartifacts").as_uri()


def test_a_server_chooses_its_own_artifact_location():
    assert artifact_location("http://tracking.example:5000", "mlartifacts") is None
    assert artifact_location("file:///tmp/mlruns", "mlartifacts") is None


def test_run_page_opens_the_runs_view_of_mlflow_3():
    assert run_page_url("sqlite:////p/mlflow.db", "1", "abc") == "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    assert run_page_url("https://mlflow.example/", "7", "abc") == "https://mlflow.example/#/experiments/7/runs/abc?workflowType=machine_learning"


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_run_in_a_temporary_store_logs_its_artifacts_there(tmp_path, synthetic_db, monkeypatch):
    params = {
        "database": {"path": str(synthetic_db), "space": str(synthetic_db / "space.yml"), "metric": "val_acc"},
        "benchmark": {"only": ["zero_shot"], "pairs": ["task0"], "budget": 3, "summary_qs": [3], "progress": False},
    }
    # a logger of the test's own: Kedro's logging setup clears the handlers of the registered ones
    recorder, handler = logging.Logger("hook lines", logging.INFO), ListHandler()
    recorder.addHandler(handler)
    monkeypatch.setattr(hooks, "logger", recorder)
    run_pipeline("benchmark", tmp_path / "run", params)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    parent = mlflow.search_runs(experiment_names=["transfertune"], filter_string="tags.`kedro.pipeline` = 'benchmark'").iloc[0]
    assert parent.artifact_uri.startswith((tmp_path / "run" / "mlartifacts").as_uri())
    assert (tmp_path / "run" / "mlartifacts" / parent.run_id / "artifacts" / "summary.csv").is_file()

    uri = f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}"
    assert handler.lines[-1] == f"Results in MLflow: mlflow ui --backend-store-uri {uri}, then open {run_page_url(uri, parent.experiment_id, parent.run_id)}"
