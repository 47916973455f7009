"""The Tuner for people: direction, optimize, the progress bar, the resume line, observe,
recommend with its forecast, database paths relative to the project."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import ROOT
from transfertune import Tuner
from transfertune.core.catalog import ObservationCatalog
from transfertune.errors import ConfigurationError
from transfertune.live.tuner import Recommendation

AT2_FAST = {"fit_steps": 20}


@pytest.fixture
def db(synthetic_db):
    return ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")


def answer(db, task="task0"):
    grid = db.grid(task)
    rows = {tuple(sorted(db.configs[int(c)].items())): i for i, c in enumerate(db.config_ids)}

    def objective(trial):
        row = rows[tuple(sorted(trial.config.items()))]
        for epoch in range(trial.start_epoch + 1, trial.epoch + 1):
            yield {"val_acc": float(grid[row, epoch - 1])}

    return objective


def test_minimise_tells_the_method_the_negated_metric_and_reports_it_as_told(db):
    with Tuner(database=db, method="zero_shot", budget=4, task="new", direction="minimize", metric="val_acc") as tuner:
        for loss in (0.9, 0.4, 0.7, 0.5):
            trial = tuner.ask()
            tuner.tell(trial, trial.epoch, {"val_acc": loss, "other": 2.0})
        history = tuner.history()
        assert history.value.tolist() == [0.9, 0.4, 0.7, 0.5] and history.best.tolist() == [0.9, 0.4, 0.4, 0.4]
        assert history.val_acc.tolist() == [0.9, 0.4, 0.7, 0.5] and history.other.tolist() == [2.0] * 4
        told = [v for s in tuner.searcher.trials.values() for v in s.values]
        assert told == [-0.9, -0.4, -0.7, -0.5]
    with pytest.raises(ConfigurationError, match="direction must be 'maximize' or 'minimize'"):
        Tuner(database=db, method="zero_shot", task="new", direction="min")


def test_optimize_runs_the_objective_to_the_budget_and_returns_the_recommendation(db, tmp_path):
    with Tuner(database=db, method="at2", method_options=AT2_FAST, store=tmp_path / "s", budget=12, task="new") as tuner:
        best = tuner.optimize(answer(db))
        assert tuner.remaining == 0 and len(tuner.history()) == 12
        assert isinstance(best, Recommendation) and best.epoch == db.max_epoch
        assert math.isfinite(best.mean) and best.std > 0
        table = tuner.forecast()
        row = table[table.config_id == db.config_ids[[db.configs[int(c)] for c in db.config_ids].index(dict(best))]].iloc[0]
        assert (row["mean"], row["std"]) == (best.mean, best.std)


def test_optimize_n_trials_and_budget_stop_it_and_a_later_call_goes_on(db):
    with Tuner(database=db, method="zero_shot", budget=40, task="new") as tuner:
        tuner.optimize(answer(db), n_trials=2)
        assert tuner.history().trial.nunique() == 2 and len(tuner.history()) == 2 * db.max_epoch
        tuner.optimize(answer(db), budget=3)
        assert len(tuner.history()) == 2 * db.max_epoch + 3 and tuner.history().trial.nunique() == 3


def test_optimize_fails_a_diverged_trial_and_goes_on_and_an_exception_is_raised(db):
    calls = []

    def objective(trial):
        calls.append(trial.trial_id)
        if trial.trial_id == 0:
            yield float("nan")
        elif trial.trial_id == 2:
            raise RuntimeError("boom")
        else:
            yield from [0.5] * (trial.epoch - trial.start_epoch)

    with Tuner(database=db, method="zero_shot", budget=40, task="new") as tuner:
        with pytest.raises(RuntimeError, match="boom"):
            tuner.optimize(objective)
        states = tuner.searcher.trials
        assert states[0].status == "failed" and "val_acc=nan" in states[0].reason
        assert states[1].told == db.max_epoch and states[2].status == "failed" and "boom" in states[2].reason


def test_a_resumed_store_prints_one_line_and_observe_is_replayed(db, tmp_path, capsys):
    config = db.configs[int(db.config_ids[3])]
    with Tuner(database=db, method="at2", method_options=AT2_FAST, store=tmp_path / "s", budget=10, task="new") as tuner:
        trial = tuner.observe(config, [0.2, 0.3])
        assert trial.pool_index == 3 and tuner.history().value.tolist() == [0.2, 0.3]
        assert tuner.observe({**config, "x1": 0.123456}, [0.5]) is None  # not in the pool: nothing told
        first = tuner.ask()
        tuner.tell(first, first.epoch, 0.4)
    capsys.readouterr()
    with Tuner(database=db, method="at2", method_options=AT2_FAST, store=tmp_path / "s", budget=10, task="new") as tuner:
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("resumed: 2 trials, 3 epochs")
        assert tuner.history().value.tolist() == [0.2, 0.3, 0.4]


def test_the_progress_bar_counts_the_epochs_told(db, capsys):
    with Tuner(database=db, method="zero_shot", budget=5, task="new", progress=True) as tuner:
        tuner.optimize(answer(db))
    assert "5/5" in capsys.readouterr().err
    with Tuner(database=db, method="zero_shot", budget=5, task="new", progress=False) as tuner:
        tuner.optimize(answer(db))
    assert "5/5" not in capsys.readouterr().err


def test_recommend_of_a_method_without_a_posterior_says_so(db):
    with Tuner(database=db, method="zero_shot", budget=5, task="new") as tuner:
        tuner.optimize(answer(db))
        best = tuner.recommend()
        assert best.mean is None and "no posterior" in best.note and tuner.forecast() is None
        assert "no posterior" in repr(best)


def test_a_relative_database_path_works_from_another_folder_and_a_missing_one_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tuner = Tuner(database="data/01_raw/digits_mlp", method="zero_shot", budget=3, task="new")
    assert tuner.problem.database.path == ROOT / "data/01_raw/digits_mlp"
    with pytest.raises(ConfigurationError, match=r"database folder data/01_raw/nope does not exist \(looked in"):
        Tuner(database="data/01_raw/nope", method="zero_shot", task="new")
    assert not np.isnan(tuner.problem.history.train_grids).all()
