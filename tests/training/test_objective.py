"""TrainingObjective: trains a trial to the asked epoch, continues from its checkpoint (one more
epoch costs one epoch and equals straight training), stores every epoch once, survives a kill
between its two writes, records divergence, refuses bad input."""

import numpy as np
import pandas as pd
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError, ProtocolError, StoreError
from transfertune.training.runner import TrainSettings
from transfertune.training.objective import TrainingObjective
from transfertune.training.tasks import task_from_arrays
from transfertune.training.trainer import train_trial
from tests.conftest import ROOT

SPACE = SearchSpace.from_yaml(ROOT / "conf" / "base" / "spaces" / "mlp.yml")
CONFIG = {"hidden_units": 32, "n_layers": 2, "dropout": 0.2, "batch_size": 32, "lr": 3e-3, "weight_decay": 1e-4}


def table_task(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    return task_from_arrays("tab", X, (X @ rng.normal(size=6) > 0).astype(np.int64), n_classes=2)


def objective(tmp_path, task=None, epochs=5, seed=1):
    return TrainingObjective(task or table_task(), TrainSettings("mlp", epochs=epochs, device="cpu"), tmp_path / "trials", seed=seed, space=SPACE)


def strip(records):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in records]


def test_continuing_trains_only_the_new_epochs_and_equals_straight_training(tmp_path):
    obj = objective(tmp_path)
    first = obj.evaluate(Trial(0, CONFIG, 3))
    assert (first.trained, first.epochs, first.status) == (3, 3, "running")
    more = obj.evaluate(Trial(0, CONFIG, 4, start_epoch=3))
    assert (more.trained, more.epochs) == (1, 4)
    straight = train_trial("mlp", CONFIG, obj.data, epochs=4, seed=1, device="cpu")
    assert strip(more.records) == strip(straight.records)
    rows = pd.read_parquet(obj.store.rows_path(0))
    assert list(rows.epoch) == [1, 2, 3, 4] and rows.val_acc.tolist() == [r["val_acc"] for r in straight.records]
    assert torch.load(obj.store.checkpoint_path(0), weights_only=True)["run"]["epoch"] == 4
    again = obj.evaluate(Trial(0, CONFIG, 4, start_epoch=3))  # already stored: nothing is trained twice
    assert again.trained == 0 and strip(again.records) == strip(more.records)


def test_a_kill_between_the_checkpoint_and_the_rows_loses_nothing(tmp_path):
    obj = objective(tmp_path)
    from transfertune.training.store import read_frame, write_frame_atomic

    obj.evaluate(Trial(0, CONFIG, 2))
    stale, meta = read_frame(obj.store.rows_path(0))
    obj.evaluate(Trial(0, CONFIG, 3, start_epoch=2))
    # put back the rows of epoch 2 next to the checkpoint of epoch 3, as a kill between the two writes leaves them
    write_frame_atomic(obj.store.rows_path(0), stale, meta)
    assert obj.stored(0).epochs == 2  # the rows alone
    assert obj.store.load(0).epochs == 3 and list(pd.read_parquet(obj.store.rows_path(0)).epoch) == [1, 2, 3]
    resumed = obj.evaluate(Trial(0, CONFIG, 4, start_epoch=3))
    assert resumed.trained == 1 and [r["epoch"] for r in resumed.records] == [1, 2, 3, 4]


def test_a_diverging_trial_is_failed_with_its_good_epochs_and_never_trained_again(tmp_path):
    obj = objective(tmp_path)
    wild = {**CONFIG, "lr": 0.1, "weight_decay": 1e-6}
    import transfertune.training.trainer as trainer

    original = trainer.TrainingRun.train_epoch

    def nan_at_epoch_3(self):
        record = original(self)
        return {**record, "train_loss": float("nan")} if record["epoch"] == 3 else record

    trainer.TrainingRun.train_epoch = nan_at_epoch_3
    try:
        progress = obj.evaluate(Trial(0, wild, 5))
    finally:
        trainer.TrainingRun.train_epoch = original
    assert progress.status == "failed" and progress.epochs == 2 and "non-finite loss at epoch 3" in progress.reason
    stored = obj.stored(0)
    assert (stored.status, stored.epochs) == ("failed", 2)
    later = obj.evaluate(Trial(0, wild, 5, start_epoch=2))
    assert later.trained == 0 and later.status == "failed"


@pytest.mark.parametrize(
    "trial, message",
    [
        (Trial(0, {**CONFIG, "lr": 5.0}, 1), "config outside the space 'mlp': 'lr'=5.0 is outside"),
        (Trial(0, {k: v for k, v in CONFIG.items() if k != "dropout"}, 1), "'dropout' \\(key 'dropout'\\) is missing"),
        (Trial(0, CONFIG, 6), "epoch 6 is outside 1..5"),
    ],
)
def test_bad_trials_are_refused_before_training(tmp_path, trial, message):
    obj = objective(tmp_path)
    with pytest.raises(ProtocolError, match=message):
        obj.evaluate(trial)
    assert not obj.store.rows_path(0).exists()


def test_a_store_written_with_other_settings_is_refused(tmp_path):
    objective(tmp_path, seed=1).evaluate(Trial(0, CONFIG, 1))
    with pytest.raises(StoreError, match="trained with another config, task or settings"):
        objective(tmp_path, seed=2).evaluate(Trial(0, CONFIG, 2, start_epoch=1))
    with pytest.raises(StoreError, match="another config"):
        objective(tmp_path, seed=1).evaluate(Trial(0, {**CONFIG, "lr": 1e-3}, 2, start_epoch=1))


def test_an_unknown_metric_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="metric 'val_r2' is not recorded for a classification task"):
        TrainingObjective(table_task(), TrainSettings("mlp", epochs=2), tmp_path, metric="val_r2")
