"""The MLflow hook: where a store keeps its artifacts, the link a run ends with, and the status
an interrupted run ends with."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow

from tests.conftest import ROOT, project_copy, run_pipeline
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


def test_a_run_in_a_temporary_store_logs_its_artifacts_there(tmp_path, synthetic_db, capsys):
    params = {
        "database": {"path": str(synthetic_db), "space": str(synthetic_db / "space.yml"), "metric": "val_acc"},
        "benchmark": {"only": ["zero_shot"], "pairs": ["task0"], "budget": 3, "summary_qs": [3], "progress": False},
    }
    run_pipeline("benchmark", tmp_path / "run", params)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    parent = mlflow.search_runs(experiment_names=["transfertune"], filter_string="tags.`kedro.pipeline` = 'benchmark'").iloc[0]
    assert parent.artifact_uri.startswith((tmp_path / "run" / "mlartifacts").as_uri())
    assert (tmp_path / "run" / "mlartifacts" / parent.run_id / "artifacts" / "summary.csv").is_file()
    assert parent.status == "FINISHED"

    # the run's last line, printed whole (not through the log handler, which wraps it)
    uri = f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}"
    last = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert last == f"Results in MLflow: mlflow ui --backend-store-uri {uri}, then open {run_page_url(uri, parent.experiment_id, parent.run_id)}"


def start_held_run(tmp_path, synthetic_db, n_jobs: int) -> tuple[subprocess.Popen, Path, list[int]]:
    """``kedro run --pipeline=benchmark`` in a subprocess, held inside the test double ``Blocks``
    (after a zero_shot episode, so the methods' libraries are imported) until the test signals it;
    returns the process, its store and the process ids running a Blocks episode."""
    project, started = project_copy(tmp_path / "project"), tmp_path / "started"
    started.mkdir()
    only = "zero_shot blocker" if n_jobs == 1 else "blocker"  # 2 blocker episodes (2 pairs) fill the 2 workers
    params = ",".join([
        f"database.path={synthetic_db}", f"database.space={synthetic_db / 'space.yml'}", "database.metric=val_acc",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "benchmark.methods.blocker.class=tests.doubles.Blocks", f"benchmark.methods.blocker.started={started}",
        f"benchmark.only={only}", "benchmark.budget=4", "benchmark.summary_qs=4", f"benchmark.n_jobs={n_jobs}",
    ])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    proc = subprocess.Popen([sys.executable, "-m", "kedro", "run", "--pipeline=benchmark", f"--params={params}"],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wanted = 1 if n_jobs == 1 else 2
    deadline = time.monotonic() + 600  # a generous bound for a loaded machine (about 15 s on a quiet one)
    while len(list(started.iterdir())) < wanted and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is not None or len(list(started.iterdir())) < wanted:  # a signal now would hit a run not yet started
        proc.kill()
        raise AssertionError(f"the run did not reach its Blocks episodes: {proc.communicate()[1][-3000:]}")
    return proc, tmp_path / "mlflow.db", [int(p.name) for p in started.iterdir()]


def run_statuses(store: Path) -> dict[str, str]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("transfertune").experiment_id])
    return {run.data.tags.get("mlflow.runName", run.info.run_id): run.info.status for run in runs}


def test_ctrl_c_ends_the_mlflow_run_killed(tmp_path, synthetic_db):
    proc, store, _ = start_held_run(tmp_path, synthetic_db, n_jobs=1)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    statuses = run_statuses(store)
    assert statuses["benchmark"] == "KILLED", statuses  # was FINISHED (MLflow's exit handler)
    assert "RUNNING" not in statuses.values() and "FINISHED" not in statuses.values(), statuses
    # no deprecation warnings from Kedro's resolvers or from linear_operator's torch.jit.script (issue 33, item 6)
    assert "register_new_resolver" not in out + err and "torch.jit.script" not in out + err


def test_sigterm_ends_the_mlflow_run_killed_and_stops_the_workers(tmp_path, synthetic_db):
    proc, store, workers = start_held_run(tmp_path, synthetic_db, n_jobs=2)
    assert os.getpid() not in workers and proc.pid not in workers  # the episodes run in worker processes
    proc.terminate()  # SIGTERM
    proc.communicate(timeout=60)  # the episodes would hold a pool left to finish for 120 s
    assert proc.returncode == 128 + signal.SIGTERM
    statuses = run_statuses(store)
    assert statuses == {"benchmark": "KILLED"}  # was RUNNING for good
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
