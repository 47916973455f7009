"""TrainingRun: one epoch at a time, and a checkpoint resumes exactly where the run stopped."""

import io

import numpy as np
import pytest
import torch

from transfertune.training.models import MODELS
from transfertune.training.tasks import task_from_arrays
from transfertune.training.trainer import TrainingRun, divergence, train_trial


def image_task(n=150, k=3, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, k, n)
    return task_from_arrays("img", means[y] + rng.normal(size=(n, 1, 8, 8)).astype(np.float32), y, n_classes=k)


def without_time(record):
    return {k: v for k, v in record.items() if k != "epoch_time_s"}


def checkpoint_roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(
    "model, fixed, options",
    [
        ("hts_cnn", None, None),  # SGD with momentum, batch norm, dropout
        ("mlp", None, None),  # Adam moments, dropout
        ("resnet", {"lr_step_epochs": 1, "lr_gamma": 0.5}, {"depth": 10}),  # a step schedule that moves every epoch
    ],
)
def test_two_epochs_straight_equal_one_epoch_checkpoint_and_one_more(model, fixed, options):
    task = image_task()
    config = {**MODELS[model].example, **({"dropout": 0.3} if model == "mlp" else {})}
    straight = train_trial(model, config, task, epochs=2, seed=3, device="cpu", fixed=fixed, options=options)

    first = TrainingRun(model, config, task, 3, "cpu", fixed=fixed, options=options)
    epoch1 = first.train_epoch()
    state = checkpoint_roundtrip(first.state_dict())
    del first
    torch.manual_seed(12345)  # whatever ran in between must not matter
    torch.rand(100)
    resumed = TrainingRun(model, config, task, 3, "cpu", fixed=fixed, options=options)
    resumed.load_state_dict(state)
    epoch2 = resumed.train_epoch()
    assert [without_time(r) for r in straight.records] == [without_time(epoch1), without_time(epoch2)]
    assert epoch2["epoch"] == 2 and resumed.epoch == 2


def test_resuming_without_the_rng_states_would_give_other_numbers():
    """The test above bites: dropout masks and batch order come from the restored generators."""
    task = image_task()
    config = {**MODELS["mlp"].example, "dropout": 0.3}
    straight = train_trial("mlp", config, task, epochs=2, seed=3, device="cpu")
    run = TrainingRun("mlp", config, task, 3, "cpu")
    run.train_epoch()
    state = checkpoint_roundtrip(run.state_dict())
    for missing in ("order_rng", "cpu_rng"):
        fresh = TrainingRun("mlp", config, task, 3, "cpu")
        fresh.load_state_dict({**state, missing: TrainingRun("mlp", config, task, 3, "cpu").state_dict()[missing]})
        assert without_time(fresh.train_epoch()) != without_time(straight.records[1])


def test_divergence_reason():
    assert divergence({"epoch": 1, "train_loss": 0.3, "val_loss": 0.4}) == ""
    assert divergence({"epoch": 4, "train_loss": float("nan"), "val_loss": 0.4}).startswith("non-finite loss at epoch 4")
    assert divergence({"epoch": 2, "train_loss": 0.1, "val_loss": float("inf")}) != ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resuming_on_cuda_with_mixed_precision_equals_straight_training():
    task = image_task()
    config = MODELS["hts_cnn"].example
    straight = train_trial("hts_cnn", config, task, epochs=2, seed=3, device="cuda")
    run = TrainingRun("hts_cnn", config, task, 3, "cuda")
    first = run.train_epoch()
    state = checkpoint_roundtrip(run.state_dict())
    resumed = TrainingRun("hts_cnn", config, task, 3, "cuda")
    resumed.load_state_dict(state)
    assert [without_time(r) for r in straight.records] == [without_time(first), without_time(resumed.train_epoch())]
