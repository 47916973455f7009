"""run_live: a tuner against real training, in-process and on Dask; a killed run resumes with no
epoch lost or trained twice; divergence and raising trials are failed, the run goes on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from transfertune.live.runner import run_live
from transfertune.live.tuner import Tuner
from transfertune.training.objective import TrainingObjective
from transfertune.training.runner import TrainSettings
from transfertune.training.tasks import task_from_arrays

SPACE = ROOT / "conf" / "base" / "spaces" / "mlp.yml"


def table_task(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    return task_from_arrays("tab", X, (X @ rng.normal(size=5) > 0).astype(np.int64), n_classes=2)


def setup(store, method="random_space", budget=8, options=None, epochs=3):
    tuner = Tuner(space=SPACE, method=method, method_options=options, store=store, budget=budget, max_epochs=epochs, task="tab")
    objective = TrainingObjective(table_task(), TrainSettings("mlp", epochs=epochs, device="cpu"), store / "trials", space=tuner.problem.space)
    return tuner, objective


def stored_rows(objective) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(objective.store.rows_path(t)) for t in objective.store.trial_ids()], ignore_index=True)


class Kill(Exception):
    pass


def test_live_run_tells_every_trained_epoch_once(tmp_path):
    tuner, objective = setup(tmp_path)
    report = run_live(tuner, objective, progress=False)
    history = tuner.history()
    assert list(history.q) == list(range(1, 9)) and report.epochs_trained == 8 and report.epochs_recovered == 0
    assert [len(g) for _, g in history.groupby("trial")] == [3, 3, 2]  # the third trial is cut to the budget left
    rows = stored_rows(objective)
    assert not rows.duplicated(["trial", "epoch"]).any() and len(rows) == 8
    merged = history.merge(rows, on=["trial", "epoch"], suffixes=("", "_stored"))
    np.testing.assert_array_equal(merged.value, merged.val_acc_stored)
    assert (history.t.diff().dropna() >= 0).all()
    tuner.close()


def test_a_killed_run_resumes_without_losing_or_retraining_an_epoch(tmp_path):
    tuner, objective = setup(tmp_path / "a", budget=9)
    run_live(tuner, objective, progress=False)
    reference = tuner.history()
    tuner.close()

    tuner, objective = setup(tmp_path / "b", budget=9)

    def die_after_4(row):
        if row["q"] == 4:
            raise Kill  # the driver dies after telling epoch 4; trial 1 has 3 epochs trained, 1 told

    with pytest.raises(Kill):
        run_live(tuner, objective, progress=False, on_tell=die_after_4)
    first_trained = stored_rows(objective)
    tuner.close()
    tuner, objective = setup(tmp_path / "b", budget=9)
    report = run_live(tuner, objective, progress=False)
    assert report.epochs_recovered == 2 and report.epochs_trained == 9 - len(first_trained)  # no epoch trained twice
    timeless = ["t", "epoch_time_s"]
    pd.testing.assert_frame_equal(tuner.history().drop(columns=timeless), reference.drop(columns=timeless))
    rows = stored_rows(objective)
    assert len(rows) == 9 and not rows.duplicated(["trial", "epoch"]).any()
    kept = rows.merge(first_trained, on=["trial", "epoch"], suffixes=("", "_first"))
    np.testing.assert_array_equal(kept.epoch_time_s, kept.epoch_time_s_first)  # the first run's epochs were kept, not redone
    tuner.close()


@pytest.mark.slow
def test_dask_workers_run_trials_in_parallel_and_give_the_in_process_numbers(tmp_path):
    tuner, objective = setup(tmp_path / "serial", method="random_space", budget=9)
    run_live(tuner, objective, progress=False)
    serial = tuner.history()
    tuner.close()
    # worker processes (as run_live starts them): threads in one process would share torch's dropout generator
    tuner, objective = setup(tmp_path / "dask", method="random_space", budget=9)
    report = run_live(tuner, objective, workers=2, progress=False)
    parallel = tuner.history()
    tuner.close()
    assert report.units == 3 and len(parallel) == 9
    # tells arrive in completion order, but every trial has the curve it has in-process
    key = ["trial", "epoch"]
    pd.testing.assert_frame_equal(
        parallel.sort_values(key)[[*key, "value"]].reset_index(drop=True), serial.sort_values(key)[[*key, "value"]].reset_index(drop=True)
    )


def test_a_diverging_trial_is_failed_and_the_pool_method_moves_on(tmp_path, monkeypatch):
    import transfertune.training.trainer as trainer

    original = trainer.TrainingRun.train_epoch

    def diverge_first_config(self):
        record = original(self)
        return {**record, "val_loss": float("inf")} if self.config["lr"] == first["lr"] and record["epoch"] == 2 else record

    tuner, objective = setup(tmp_path, method="random_search", budget=6)
    first = tuner.searcher.pool.configs[tuner.searcher.method.order[0]]
    monkeypatch.setattr(trainer.TrainingRun, "train_epoch", diverge_first_config)
    report = run_live(tuner, objective, progress=False)
    history = tuner.history()
    assert report.failed == 1 and tuner.searcher.trials[0].status == "failed"
    assert list(history[history.trial == 0].epoch) == [1] and len(history) == 6
    assert "non-finite loss at epoch 2" in tuner.searcher.trials[0].reason
    tuner.close()


def test_a_trial_that_raises_is_failed_with_its_error(tmp_path, monkeypatch):
    import transfertune.training.objective as live_objective

    original = live_objective.train_to
    calls = []

    def flaky(trial, *args):
        calls.append(trial.trial_id)
        if trial.trial_id == 1:
            raise MemoryError("out of memory")
        return original(trial, *args)

    monkeypatch.setattr(live_objective, "train_to", flaky)
    tuner, objective = setup(tmp_path, budget=7)
    report = run_live(tuner, objective, progress=False)
    assert report.errors[0]["trial"] == 1 and "MemoryError: out of memory" in report.errors[0]["error"]
    assert tuner.searcher.trials[1].status == "failed" and len(tuner.history()) == 7
    tuner.close()
