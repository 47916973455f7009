"""Tuner: ask/tell for a user's loop, persistence and replay, bad calls, locking, RNG isolation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from transfertune.core.objectives import BudgetExhausted
from transfertune.errors import ConfigurationError, ProtocolError, StoreError
from transfertune.live.tuner import Tuner
from transfertune.methods.protocol import SpaceSearcher

AT2 = {"fit_steps": 10}


def accuracy(config, epoch):
    """A stand-in for training: a smooth function of the synthetic space's x1..x5 and the epoch."""
    quality = 0.3 + 0.6 * np.mean([config[f"x{i}"] for i in range(1, 6)])
    return float(quality * (1 - np.exp(-epoch / 2)))


def user_loop(tuner, stop_after=None):
    """Train each asked trial epoch by epoch; stop (as a crash would) after ``stop_after`` tells."""
    told = 0
    for trial in tuner:
        for epoch in range(trial.start_epoch + 1, trial.epoch + 1):
            if stop_after is not None and told == stop_after:
                return
            tuner.tell(trial, epoch, {"val_acc": accuracy(trial.config, epoch), "val_loss": 1.0 / epoch})
            told += 1


def same_run(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return a.drop(columns="t").equals(b.drop(columns="t"))


@pytest.mark.parametrize("method, options", [("at2", AT2), ("random_space", {"epochs": 3})])
def test_a_crashed_loop_resumes_to_the_same_run(synthetic_db, tmp_path, method, options):
    settings = dict(database=synthetic_db, method=method, method_options=options, budget=10, task="mine")
    with Tuner(store=tmp_path / "a", **settings) as straight:
        user_loop(straight)
        reference = straight.history()
        recommended = straight.recommend()
    assert list(reference.q) == list(range(1, 11)) and reference.best.is_monotonic_increasing

    crashed = Tuner(store=tmp_path / "b", **settings)
    user_loop(crashed, stop_after=4)
    in_flight = crashed.in_flight
    crashed.close()  # the process dies here (the lock would be released by the kernel)
    with Tuner(store=tmp_path / "b", **settings) as resumed:
        assert len(resumed.history()) == 4 and [t.trial_id for t in resumed.in_flight] == [t.trial_id for t in in_flight]
        first = resumed.ask()
        assert (first.trial_id, first.start_epoch, first.epoch) == (in_flight[0].trial_id, in_flight[0].start_epoch, in_flight[0].epoch)
        for epoch in range(first.start_epoch + 1, first.epoch + 1):
            resumed.tell(first, epoch, {"val_acc": accuracy(first.config, epoch), "val_loss": 1.0 / epoch})
        user_loop(resumed)
        assert same_run(resumed.history(), reference) and resumed.recommend() == recommended
        with pytest.raises(BudgetExhausted):
            resumed.ask()
    events = [json.loads(line) for line in (tmp_path / "b" / "events.jsonl").read_text().splitlines()]
    tells = [(e["trial"], e["epoch"]) for e in events if e["event"] == "tell"]
    assert len(tells) == len(set(tells)) == 10  # no epoch told twice


def test_history_counts_epochs_best_so_far_and_database_ids(synthetic_db):
    with Tuner(database=synthetic_db, method="zero_shot", budget=5, task="mine") as tuner:
        user_loop(tuner)
        history = tuner.history()
        order = tuner.searcher.method.order
    assert list(history.columns[:7]) == ["q", "trial", "epoch", "value", "best", "t", "config_id"] and "val_loss" in history
    assert list(history.epoch) == [1, 2, 3, 4, 5] and set(history.trial) == {0}
    assert history.config_id.iloc[0] == tuner.problem.history.config_ids[order[0]]
    np.testing.assert_array_equal(history.best, np.maximum.accumulate(history.value))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t, trial: t.tell(99, 1, 0.5), "trial 99 was never asked"),
        (lambda t, trial: t.tell(trial, 1, {"val_acc": float("nan")}), "val_acc=nan is not finite; report a diverged run with fail"),
        (lambda t, trial: t.tell(trial, 1, {"val_acc": 0.5, "val_loss": float("inf")}), "val_loss=inf is not finite"),
        (lambda t, trial: t.tell(trial, 1, {"loss": 0.5}), "lack the objective metric 'val_acc'"),
        (lambda t, trial: t.tell(trial, 3, 0.5), "the next is epoch 1, not 3"),
    ],
)
def test_bad_calls_raise_one_line_and_leave_the_store_unchanged(synthetic_db, tmp_path, call, message):
    with Tuner(database=synthetic_db, method="zero_shot", store=tmp_path, budget=5, task="mine") as tuner:
        trial = tuner.ask()
        before = (tmp_path / "events.jsonl").read_bytes()
        with pytest.raises(ProtocolError, match=message) as info:
            call(tuner, trial)
        assert "\n" not in str(info.value) and (tmp_path / "events.jsonl").read_bytes() == before
        tuner.tell(trial, 1, 0.5)
        with pytest.raises(ProtocolError, match="trial 0 is finished"):
            tuner.tell(trial, 1, 0.5)
        tuner.fail(tuner.ask(), "diverged")
        with pytest.raises(ProtocolError, match="trial 0 failed \\(diverged\\)"):
            tuner.tell(0, 2, 0.5)


def test_a_failed_trial_is_replayed_as_failed(synthetic_db, tmp_path):
    settings = dict(database=synthetic_db, method="random_search", budget=6, task="mine", store=tmp_path)
    with Tuner(**settings) as tuner:
        trial = tuner.ask()
        tuner.tell(trial, 1, 0.4)
        tuner.fail(tuner.ask(), "non-finite loss at epoch 2")
        nxt = tuner.ask()
    assert nxt.trial_id == 1
    with Tuner(**settings) as again:
        state = again.searcher.trials[0]
        assert state.status == "failed" and state.reason == "non-finite loss at epoch 2" and again.remaining == 6 - 1 - 1
        assert again.ask().trial_id == 1  # the orphan: asked, never told


def test_one_process_per_store_and_settings_must_match(synthetic_db, tmp_path):
    settings = dict(database=synthetic_db, method="zero_shot", budget=5, task="mine", store=tmp_path)
    tuner = Tuner(**settings)
    with pytest.raises(StoreError, match="is in use by another process"):
        Tuner(**settings)
    tuner.tell(tuner.ask(), 1, 0.3)
    tuner.close()
    with pytest.raises(StoreError, match=r"other settings \(budget, history; budget: store has 5, now 6\)"):
        Tuner(**{**settings, "budget": 6, "train_tasks": ["task2", "task3"]})
    with pytest.raises(StoreError, match=r"other settings \(method"):
        Tuner(**{**settings, "method": "random_search"})
    Tuner(**settings).close()  # the failed opens released the lock


def test_a_log_the_method_does_not_reproduce_is_refused(synthetic_db, tmp_path):
    settings = dict(database=synthetic_db, method="random_space", budget=5, task="mine", store=tmp_path)
    with Tuner(**settings) as tuner:
        tuner.ask()
    path = tmp_path / "events.jsonl"
    lines = path.read_text().splitlines()
    ask = json.loads(lines[1])
    ask["trial"]["config"]["x1"] = 0.123
    path.write_text("\n".join([lines[0], json.dumps(ask)]) + "\n")
    with pytest.raises(StoreError, match="line 2: replaying, method 'random_space' asks .* the method is not deterministic"):
        Tuner(**settings)


class TorchDraws(SpaceSearcher):
    """Proposes configs from torch's global generator (what the Tuner must keep apart)."""

    def ask(self):
        u = torch.rand(7).double().numpy()
        return self.new_trial(self.from_unit(u[None])[0], 1)


def test_the_methods_torch_generator_is_kept_apart_from_the_callers(synthetic_db, tmp_path):
    def run(noise: bool, store):
        with Tuner(database=synthetic_db, method="x", method_options={"class": f"{__name__}:TorchDraws"}, budget=4, task="mine", store=store) as t:
            configs = []
            for trial in t:
                configs.append(trial.config)
                if noise:
                    torch.manual_seed(99)
                    torch.rand(5)
                t.tell(trial, 1, 0.5)
        return configs

    quiet = run(False, tmp_path / "q")
    assert run(True, tmp_path / "n") == quiet and len({json.dumps(c, sort_keys=True) for c in quiet}) == 4
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with Tuner(database=synthetic_db, method="x", method_options={"class": f"{__name__}:TorchDraws"}, budget=4, task="mine", store=tmp_path / "q") as t:
        assert t.in_flight == [] and len(t.history()) == 4  # replayed
    assert torch.equal(torch.get_rng_state(), state)  # opening and replaying did not touch the caller's generator


def test_without_a_database_a_pool_method_gets_a_sampled_pool_and_transfer_is_refused(tmp_path):
    from tests.conftest import ROOT

    space = ROOT / "conf" / "base" / "spaces" / "mlp.yml"
    with Tuner(space=space, method="random_search", budget=3, max_epochs=2, pool_size=10) as tuner:
        assert tuner.problem.history.n_configs == 10 and tuner.problem.history.train_grids.shape == (0, 10, 2)
        trial = tuner.ask()
        assert trial.config in tuner.problem.history.configs
    with pytest.raises(ConfigurationError, match="'zero_shot' transfers from past tuning: give it a database"):
        Tuner(space=space, method="zero_shot", max_epochs=2)
    with pytest.raises(ConfigurationError, match="max_epochs .* must be given"):
        Tuner(space=space, method="random_space")


def test_database_checks(synthetic_db):
    with pytest.raises(ConfigurationError, match="task 'task1' is a task of the database"):
        Tuner(database=synthetic_db, task="task1")
    with pytest.raises(ConfigurationError, match="train_tasks \\['nope'\\] are not tasks"):
        Tuner(database=synthetic_db, task="mine", train_tasks=["nope"])
    with pytest.raises(ConfigurationError, match="max_epochs 9 is past them"):
        Tuner(database=synthetic_db, task="mine", method="zero_shot", max_epochs=9)
    with pytest.raises(ConfigurationError, match="the space 'other' differs from the database's .*space.yml"):
        Tuner(database=synthetic_db, task="mine", space={"name": "other", "hyperparameters": [{"name": "x0", "type": "float", "lower": 0, "upper": 1}]})


def test_a_loop_that_does_not_tell_is_told_so(synthetic_db):
    with Tuner(database=synthetic_db, method="hyperband", budget=20, task="mine") as tuner:
        with pytest.raises(ProtocolError, match="waits for a trial in flight \\(\\[0\\]\\): tell it before asking again"):
            for _ in tuner:
                pass


def test_the_time_budget_stops_asking(synthetic_db):
    with Tuner(database=synthetic_db, method="zero_shot", budget=50, task="mine", budget_seconds=0.0) as tuner:
        with pytest.raises(BudgetExhausted, match="time budget of 0 s is spent"):
            tuner.ask()
