"""`tune` end to end through Kedro on tiny settings; a rerun trains nothing; kill -9 during `tune`
then a rerun loses and duplicates no epoch; the trials appended to an observation catalog load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest

from tests.conftest import ROOT, run_pipeline
from transfertune.core.catalog import ObservationCatalog
from transfertune.training.store import LiveTrialStore

TASK = "digits-cls-s1-000"
TINY = {"n_subsets": 1, "n_classes": 3, "n_per_class": 20, "seed": 1}
# the subsample-stage task and the small digits catalog (the default is a task family's, tested below)
DIGITS = {"database": {"path": "data/01_raw/digits_mlp"}, "model": "mlp"}


def tune_params(tmp_path, **overrides):
    params = {
        "methods": {"at2": False, "zero_shot": {}, "random_space": {"epochs": 3}},
        "budget": 6,
        "summary_qs": [3, 6],
        "task": {"from": "class_subsets", "class_subsets": TINY},
        **DIGITS,
        "store_dir": str(tmp_path / "stores"),
        "progress": False,
    }
    params.update(overrides)
    return {"tune": params}


def told(store) -> list[tuple[int, int]]:
    lines = (store / "events.jsonl").read_text().splitlines()
    return [(e["trial"], e["epoch"]) for e in map(json.loads, lines) if e["event"] == "tell"]


def test_tune_writes_the_evaluation_outputs_and_a_rerun_trains_nothing(tmp_path):
    catalog_dir = tmp_path / "grown_catalog"
    params = tune_params(tmp_path, record={"catalog": str(catalog_dir)})
    run_pipeline("tune", tmp_path, params)
    data = tmp_path / "data"
    results = pd.read_parquet(data / "07_model_output/tune_results.parquet")
    assert set(results.method) == {"zero_shot", "random_space"} and set(results.task) == {TASK}
    for _, group in results.groupby("method"):
        assert list(group.q) == [1, 2, 3, 4, 5, 6] and group.best.is_monotonic_increasing
    assert (results.regret >= 0).all() and results.regret.min() == 0  # against the best of the run
    assert list(results[results.method == "random_space"].epoch) == [1, 2, 3, 1, 2, 3]
    summary = pd.read_csv(data / "08_reporting/tune_summary.csv")
    assert list(summary.columns) == ["method", "q", "best_mean", "best_se", "regret_mean", "regret_se", "seconds_mean", "n"]
    assert sorted(summary.q.unique()) == [3, 6]
    assert (data / "08_reporting/tune_best_so_far.png").stat().st_size > 10_000
    assert len(pd.read_csv(data / "08_reporting/tune_curves.csv")) == 12
    info = json.loads((data / "08_reporting/tune_run_info.json").read_text())
    assert [r["epochs_trained"] for r in info["runs"]] == [6, 6]

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    nested = runs[runs["tags.method"].notna()]
    assert set(nested["tags.method"]) == {"zero_shot", "random_space"}
    history = mlflow.MlflowClient().get_metric_history(nested.iloc[0].run_id, "best")
    assert len(history) == 6

    grown = ObservationCatalog.load(catalog_dir, catalog_dir / "space.yml", "val_acc")
    assert TASK in grown.tasks and len(grown.tasks) == 7 and any(p.test == TASK for p in grown.pairs)
    live_rows = grown.observations[grown.observations.task == TASK]
    assert len(live_rows) == info["recorded"]["rows"] and info["recorded"]["new_configs"] == 2  # random_space's own configs

    run_pipeline("tune", tmp_path, params)  # same parameters: everything is in the stores
    again = pd.read_parquet(data / "07_model_output/tune_results.parquet")
    info = json.loads((data / "08_reporting/tune_run_info.json").read_text())
    assert [r["epochs_trained"] for r in info["runs"]] == [0, 0] and [r["epochs_told_before"] for r in info["runs"]] == [6, 6]
    pd.testing.assert_frame_equal(again.drop(columns="t"), results.drop(columns="t"))


def test_bad_tune_parameters_are_one_line_errors(tmp_path):
    from transfertune.errors import ConfigurationError
    from transfertune.pipelines.tune.nodes import parse_params

    with pytest.raises(ConfigurationError, match=r"tune\.budget: Input should be greater than or equal to 1"):
        parse_params({**tune_params(tmp_path)["tune"], "budget": 0})
    with pytest.raises(ConfigurationError, match=r"tune\.colour: Extra inputs are not permitted"):
        parse_params({**tune_params(tmp_path)["tune"], "colour": "red"})
    with pytest.raises(ConfigurationError, match="tune.methods is empty"):
        parse_params({**tune_params(tmp_path)["tune"], "methods": {}})


@pytest.mark.slow
def test_kill_9_during_tune_then_a_rerun_loses_and_duplicates_no_epoch(tmp_path):
    budget = 40
    params = tune_params(tmp_path, methods={"at2": False, "zero_shot": {}, "random_space": False}, budget=budget,
                         task={"from": "class_subsets", "class_subsets": {**TINY, "n_per_class": None}})
    store = tmp_path / "stores" / TASK / "zero_shot" / "rep0"
    overrides = ",".join([
        f"data_root={tmp_path / 'data'}", "mlflow.enabled=false",
        f"tune.store_dir={tmp_path / 'stores'}", f"tune.budget={budget}", "tune.progress=false",
        "tune.methods.at2=false", "tune.methods.random_space=false", "tune.task.class_subsets.n_classes=3",
        "tune.task.from=class_subsets", "tune.database.path=data/01_raw/digits_mlp", "tune.model=mlp",
    ])
    command = [sys.executable, "-m", "transfertune", "run", "--pipeline=tune", f"--params={overrides}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if (store / "events.jsonl").is_file() and len(told(store)) >= 8:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = told(store)
    # what the store holds: a kill between an epoch's checkpoint and its rows leaves that epoch in
    # the checkpoint only (LiveTrialStore.load takes the further of the two, as the rerun does)
    trials = LiveTrialStore(store / "trials")
    trial_ids = {int(p.name[1:7]) for p in (store / "trials").iterdir() if re.fullmatch(r"t\d{6}\.(parquet|pt)", p.name)}
    stored_before = {
        (trial_id, int(record["epoch"])): record["epoch_time_s"]
        for trial_id in sorted(trial_ids)
        for record in trials.load(trial_id).records
    }
    assert 8 <= len(before) < budget, proc.stderr.read().decode()[-3000:]

    run_pipeline("tune", tmp_path, params)
    after = told(store)
    assert after[: len(before)] == before and len(after) == len(set(after)) == budget  # appended, nothing told twice
    rows = pd.concat([pd.read_parquet(p) for p in (store / "trials").glob("t*.parquet")], ignore_index=True)
    assert len(rows) == budget and not rows.duplicated(["trial", "epoch"]).any()
    for _, trial in rows.groupby("trial"):
        assert list(trial.sort_values("epoch").epoch) == list(range(1, len(trial) + 1))
    for (trial, epoch), seconds in stored_before.items():  # every epoch trained before the kill was kept, not trained again
        assert rows[(rows.trial == trial) & (rows.epoch == epoch)].epoch_time_s.item() == seconds
    info = json.loads((tmp_path / "data/08_reporting/tune_run_info.json").read_text())["runs"][0]
    assert info["epochs_told_before"] == len(before)
    assert info["epochs_trained"] == budget - len(stored_before) and info["epochs_recovered"] == len(stored_before) - len(before)
    results = pd.read_parquet(tmp_path / "data/07_model_output/tune_results.parquet")
    assert list(results.q) == list(range(1, budget + 1))


def test_tune_task_from_a_family_is_the_named_member(tmp_path):
    from transfertune.data.families import build_family, spec_from_params
    from transfertune.errors import ConfigurationError
    from transfertune.pipelines.tune.nodes import prepare_task

    family = {"preset": "tabular_mlp", "seed": 2, "n_tasks": 3, "factors": {"n_train": [30, 60]}, "n_val": 20}
    members = build_family(spec_from_params({k: v for k, v in family.items() if k != "seed"}), seed=2)
    task = prepare_task(tune_params(tmp_path, task={"from": "family", "family": family, "subset_id": members[1].name})["tune"])
    assert task.name == members[1].name and len(task.X_train) == len(members[1].task.X_train)
    assert prepare_task(tune_params(tmp_path, task={"from": "family", "family": family})["tune"]).name == members[0].name
    with pytest.raises(ConfigurationError, match="not among the family's tasks"):
        prepare_task(tune_params(tmp_path, task={"from": "family", "family": family, "subset_id": "nope"})["tune"])
