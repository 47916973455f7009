"""The trainer: per-epoch curves, determinism, divergence recorded as failure, regression."""

import math

import numpy as np
import pytest
import torch

from transfertune.errors import ConfigurationError
from transfertune.training.models import MODELS
from transfertune.training.tasks import split_indices, task_from_arrays
from transfertune.training.trainer import metric_names, train_trial

HTS = MODELS["hts_cnn"].example


def image_task(n=150, k=3, seed=0, name="img"):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, k, n)
    X = means[y] + rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    return task_from_arrays(name, X, y, n_classes=k)


def without_time(records):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in records]


def test_records_every_epoch_with_the_classification_metrics():
    result = train_trial("hts_cnn", HTS, image_task(), epochs=3, seed=0, device="cpu")
    assert result.status == "completed" and result.last_good_epoch == 3 and result.device == "cpu"
    assert [r["epoch"] for r in result.records] == [1, 2, 3]
    for r in result.records:
        assert set(r) == {"epoch", *metric_names("classification")}
        assert 0.0 <= r["val_acc"] <= 1.0 and 0.0 <= r["train_acc"] <= 1.0 and r["epoch_time_s"] > 0
    assert result.records[-1]["val_acc"] > 0.6  # separable class means: training does something


def test_same_seed_same_curves_other_seed_other_curves():
    task = image_task()
    a = train_trial("hts_cnn", HTS, task, epochs=2, seed=7, device="cpu")
    b = train_trial("hts_cnn", HTS, task, epochs=2, seed=7, device="cpu")
    c = train_trial("hts_cnn", HTS, task, epochs=2, seed=8, device="cpu")
    assert without_time(a.records) == without_time(b.records)
    assert without_time(a.records) != without_time(c.records)


def test_nan_weights_mid_run_fail_the_trial_and_keep_the_good_epochs(monkeypatch):
    import transfertune.training.trainer as trainer

    built = []
    original = trainer.build_model
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: built.append(original(*a, **k)) or built[-1])

    def poison(record):
        if record["epoch"] == 2:  # after epoch 2 the first conv's weights become NaN
            with torch.no_grad():
                next(built[-1].parameters()).fill_(float("nan"))

    result = train_trial("hts_cnn", HTS, image_task(), epochs=5, seed=0, device="cpu", on_epoch=poison)
    assert result.status == "failed"
    assert result.last_good_epoch == 2 and result.failed_epoch == 3
    assert [r["epoch"] for r in result.records] == [1, 2]
    assert all(math.isfinite(r["val_loss"]) for r in result.records)
    assert "non-finite loss at epoch 3" in result.reason and result.initial is None


def test_a_huge_learning_rate_diverges_and_the_caller_goes_on():
    task = image_task(n=120)
    result = train_trial("hts_cnn", {**HTS, "lr": 1e8}, task, epochs=3, seed=0, device="cpu")
    assert result.status == "failed" and result.last_good_epoch == 0 and result.records == []
    # failed in epoch 1: the untrained model's metrics are kept so a catalog can pad the trial
    assert set(result.initial) >= {"val_loss", "val_acc", "train_loss", "train_acc"}
    assert all(math.isfinite(v) for v in result.initial.values())
    ok = train_trial("hts_cnn", HTS, task, epochs=1, seed=0, device="cpu")
    assert ok.status == "completed"


def test_regression_records_rmse_and_r2():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (100 + 30 * X @ rng.normal(size=5)).astype(np.float32)  # far from unit scale on purpose
    task = task_from_arrays("reg", X, y, task_type="regression")
    result = train_trial("mlp", {**MODELS["mlp"].example, "lr": 1e-2}, task, epochs=6, seed=0, device="cpu")
    assert result.status == "completed"
    last = result.records[-1]
    assert set(last) == {"epoch", *metric_names("regression")}
    assert last["val_r2"] > 0.5 and last["val_rmse"] < 0.7 * float(np.std(y))


def test_invalid_trials_raise():
    with pytest.raises(ConfigurationError, match="epochs must be >= 1"):
        train_trial("hts_cnn", HTS, image_task(), epochs=0, seed=0, device="cpu")
    table = task_from_arrays("tab", np.zeros((20, 4), np.float32), np.arange(20) % 2, n_classes=2)
    with pytest.raises(ConfigurationError, match="needs image tasks"):
        train_trial("hts_cnn", HTS, table, epochs=1, seed=0, device="cpu")


def test_split_is_stratified_seeded_and_disjoint():
    y = np.repeat([0, 1, 2], [10, 20, 30])
    train, val = split_indices(y, 0.3, seed=1)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 60
    assert [int((y[val] == c).sum()) for c in range(3)] == [3, 6, 9]
    assert np.array_equal(val, split_indices(y, 0.3, seed=1)[1])
    assert not np.array_equal(val, split_indices(y, 0.3, seed=2)[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_is_deterministic():
    task = image_task()
    a = train_trial("hts_cnn", HTS, task, epochs=2, seed=3, device="cuda")
    b = train_trial("hts_cnn", HTS, task, epochs=2, seed=3, device="cuda")
    assert a.device.startswith("cuda") and a.status == "completed"
    assert without_time(a.records) == without_time(b.records)
