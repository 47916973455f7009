"""Nothing lost: atomic per-trial files, resume after an interruption or kill -9, no duplicates,
failed trials padded or dropped, Dask and in-process runs agree."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from transfertune.core.catalog import ObservationCatalog
from transfertune.training.build import build_catalog
from transfertune.training.pairs import make_pairs
from transfertune.training.runner import TrainSettings, make_jobs, run_trials
from transfertune.training.store import TrialKey, TrialStore, assemble_observations
from transfertune.training.tasks import task_from_arrays
from transfertune.training.trainer import TrialResult

MLP_SPACE = ROOT / "conf" / "base" / "spaces" / "mlp.yml"
CONFIGS = [
    {"hidden_units": 16, "n_layers": 1, "dropout": 0.0, "batch_size": 16, "lr": 1e-2, "weight_decay": 1e-5},
    {"hidden_units": 32, "n_layers": 2, "dropout": 0.1, "batch_size": 32, "lr": 3e-3, "weight_decay": 1e-4},
    {"hidden_units": 24, "n_layers": 1, "dropout": 0.2, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-6},
]
SETTINGS = TrainSettings("mlp", epochs=3, device="cpu")


def table_tasks(n_tasks=2, n=90):
    tasks = []
    for t in range(n_tasks):
        rng = np.random.default_rng(t)
        X = rng.normal(size=(n, 6)).astype(np.float32)
        y = (X @ rng.normal(size=6) > 0).astype(np.int64)
        tasks.append(task_from_arrays(f"task{t}", X, y, n_classes=2))
    return tasks


class Interrupt(Exception):
    pass


def stop_after(k):
    def callback(summary, report):
        if report.ran >= k:
            raise Interrupt

    return callback


def stored_files(root):
    return sorted(p for p in Path(root).rglob("*.parquet"))


def test_store_write_is_atomic_and_idempotent(tmp_path):
    store = TrialStore(tmp_path)
    key = TrialKey("a/b task", 3, 1, "f00")
    result = TrialResult("completed", [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.6}], 2)
    path = store.write(key, result, {"config": {"lr": 0.1}})
    store.write(key, result)  # a second write replaces, never appends
    frame, meta = store.read(key)
    assert path.parent.name == "a_b_task" and stored_files(tmp_path) == [path]
    assert list(frame["epoch"]) == [1, 2] and set(frame["task"]) == {"a/b task"}
    assert meta["status"] == "completed" and meta["config_id"] == 3
    (path.parent / f"{path.name}.tmp-deadbeef").write_bytes(b"half a file")  # a killed writer's leftover
    assert store.clean_temporary() == 1 and stored_files(tmp_path) == [path]


def test_interrupted_run_resumes_without_duplicates(tmp_path):
    tasks = table_tasks()
    jobs = make_jobs(tasks, CONFIGS, [0, 1], SETTINGS)
    data = {t.name: t for t in tasks}
    store = TrialStore(tmp_path / "store")
    with pytest.raises(Interrupt):
        run_trials(jobs, data, SETTINGS, store, progress=False, on_trial_done=stop_after(4))
    assert len(stored_files(store.root)) == 4
    # config-major order: the first trials done are config 0 on every task and seed
    assert {j.config_id for j in jobs[:4]} == {0}
    report = run_trials(jobs, data, SETTINGS, store, progress=False)
    assert (report.total, report.skipped, report.completed) == (12, 4, 8)
    again = run_trials(jobs, data, SETTINGS, store, progress=False)
    assert (again.skipped, again.ran) == (12, 0)
    frames, metas = store.collect(j.key for j in jobs)
    obs, failures = assemble_observations(frames, metas, SETTINGS.epochs)
    assert len(obs) == 12 * 3 and failures.empty
    assert not obs.duplicated(["task", "config_id", "seed", "epoch"]).any()
    assert obs.groupby(["task", "config_id", "seed"])["epoch"].apply(list).map(lambda e: e == [1, 2, 3]).all()


def test_changed_settings_do_not_reuse_old_trials(tmp_path):
    tasks = table_tasks(1)
    store = TrialStore(tmp_path)
    jobs = make_jobs(tasks, CONFIGS[:1], [0], SETTINGS)
    run_trials(jobs, {t.name: t for t in tasks}, SETTINGS, store, progress=False)
    longer = TrainSettings("mlp", epochs=4, device="cpu")
    jobs4 = make_jobs(tasks, CONFIGS[:1], [0], longer)
    assert jobs4[0].key.fingerprint != jobs[0].key.fingerprint
    assert run_trials(jobs4, {t.name: t for t in tasks}, longer, store, progress=False).ran == 1
    # only device/execution details may change without retraining
    gpu_like = TrainSettings("mlp", epochs=3, device="cpu", amp=False, torch_threads=2)
    assert make_jobs(tasks, CONFIGS[:1], [0], gpu_like)[0].key == jobs[0].key


# The child imports only what it needs (no pytest, no pandera): its start-up is most of the test.
KILL_SCRIPT = """
import time
import numpy as np, torch
torch.set_num_threads(1)
from transfertune.training.build import build_catalog
from transfertune.training.runner import TrainSettings
from transfertune.training.tasks import task_from_arrays
tasks = []
for t in range(2):
    rng = np.random.default_rng(t)
    X = rng.normal(size=(90, 6)).astype(np.float32)
    tasks.append(task_from_arrays(f"task{{t}}", X, (X @ rng.normal(size=6) > 0).astype(np.int64), n_classes=2))
def slow(summary, report):
    time.sleep(0.3)  # widen the window between trials so the kill lands mid-run
build_catalog(tasks, {configs!r}, [0, 1], TrainSettings("mlp", epochs=3, device="cpu"), {out!r}, {space!r},
              progress=False, on_trial_done=slow)
"""


def test_kill_9_mid_run_then_rerun_gives_every_trial_exactly_once(tmp_path):
    out = tmp_path / "catalog"
    script = KILL_SCRIPT.format(configs=CONFIGS, out=str(out), space=str(MLP_SPACE))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(stored_files(out / "_trials")) < 3 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(stored_files(out / "_trials"))
    assert 3 <= done_before < 12, proc.stderr.read().decode()[-2000:]
    assert not (out / "observations.parquet").exists()

    report, obs, failures = build_catalog(table_tasks(), CONFIGS, [0, 1], SETTINGS, out, MLP_SPACE, progress=False)
    assert report.skipped == done_before and report.ran == 12 - done_before
    assert len(stored_files(out / "_trials")) == 12
    on_disk = pd.read_parquet(out / "observations.parquet")
    assert len(on_disk) == 12 * 3 and not on_disk.duplicated(["task", "config_id", "seed", "epoch"]).any()
    catalog = ObservationCatalog.load(out, out / "space.yml", "val_acc")
    assert catalog.summary()["tasks"] == 2 and catalog.summary()["configs"] == 3 and catalog.seeds == [0, 1]
    assert [json.loads(line)["config_id"] for line in (out / "configs.jsonl").read_text().splitlines()] == [0, 1, 2]


def failed_trial(last_good, epochs=4, initial=None):
    records = [{"epoch": e, "val_acc": 0.1 * e, "val_loss": 1.0 / e, "epoch_time_s": 0.5} for e in range(1, last_good + 1)]
    frame = pd.DataFrame(records) if records else pd.DataFrame({"epoch": pd.Series([], dtype="int64")})
    frame.insert(0, "task", "t")
    frame.insert(1, "config_id", last_good)
    frame.insert(2, "seed", 0)
    meta = {"task": "t", "config_id": last_good, "seed": 0, "status": "failed", "last_good_epoch": last_good,
            "failed_epoch": last_good + 1, "reason": "nan", "initial": initial}
    return frame, meta


def test_failed_trials_are_padded_with_the_last_good_epoch_or_dropped():
    frames, metas = zip(failed_trial(2), failed_trial(0, initial={"val_acc": 0.2, "val_loss": 2.0}), failed_trial(0))
    obs, failures = assemble_observations(frames, metas, epochs=4, failed_policy="pad")
    assert list(failures["last_good_epoch"]) == [0, 0, 2] and list(failures["failed_epoch"]) == [1, 1, 3]
    two = obs[obs.config_id == 2]
    assert list(two["epoch"]) == [1, 2, 3, 4] and list(two["padded"]) == [False, False, True, True]
    assert list(two["val_acc"]) == pytest.approx([0.1, 0.2, 0.2, 0.2]) and list(two["epoch_time_s"]) == [0.5, 0.5, 0.0, 0.0]
    zero = obs[obs.config_id == 0]  # failed in epoch 1: padded with the untrained model's values
    assert list(zero["epoch"]) == [1, 2, 3, 4] and zero["padded"].all() and (zero["val_acc"] == 0.2).all()
    assert obs["val_acc"].notna().all() and len(obs) == 8  # the third trial has nothing finite: failure log only
    dropped, failures2 = assemble_observations(frames, metas, epochs=4, failed_policy="drop")
    assert dropped.empty and len(failures2) == 3


def test_dask_scheduler_gives_the_same_catalog_as_in_process(tmp_path):
    """Trials submitted to a Dask scheduler (here an in-process one, so the test does not pay
    for importing torch in fresh worker processes; ``workers > 1`` starts a process
    LocalCluster the same way, timed by benchmarks/train_throughput.py)."""
    from distributed import LocalCluster

    tasks = table_tasks()
    kwargs = dict(progress=False, pairs={"method": "random", "n_train": 1, "n_pairs": 3, "seed": 0})
    _, local, _ = build_catalog(tasks, CONFIGS[:2], [0], SETTINGS, tmp_path / "a", MLP_SPACE, workers=1, **kwargs)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        report, dask, _ = build_catalog(
            tasks, CONFIGS[:2], [0], SETTINGS, tmp_path / "b", MLP_SPACE, scheduler_address=cluster.scheduler_address, **kwargs
        )
    assert report.ran == 4 and not report.errors
    cols = ["task", "config_id", "seed", "epoch", "train_loss", "val_loss", "val_acc"]
    pd.testing.assert_frame_equal(local[cols], dask[cols])
    assert len(stored_files(tmp_path / "b" / "_trials")) == 4  # the workers wrote the trial files
    pairs = json.loads((tmp_path / "b" / "train_test_pairs.json").read_text())["pairs"]
    assert len(pairs) == 3 and all(len(p["train"]) == 1 and p["test"] not in p["train"] for p in pairs)


def test_a_trial_that_raises_is_reported_not_stored_and_the_others_go_on(tmp_path):
    tasks = table_tasks(1)
    bad = {**CONFIGS[0], "n_layers": "two"}  # int("two") raises inside the trial
    jobs = make_jobs(tasks, [CONFIGS[0], bad, CONFIGS[1]], [0], SETTINGS)
    report = run_trials(jobs, {t.name: t for t in tasks}, SETTINGS, TrialStore(tmp_path), progress=False)
    assert report.completed == 2 and len(report.errors) == 1 and report.errors[0]["config_id"] == 1
    assert "ValueError" in report.errors[0]["error"] and len(stored_files(tmp_path)) == 2


def test_pairs():
    tasks = [f"t{i}" for i in range(5)]
    loo = make_pairs(tasks)
    assert [p["test"] for p in loo] == tasks and all(len(p["train"]) == 4 and p["test"] not in p["train"] for p in loo)
    rnd = make_pairs(tasks, "random", n_train=2, n_pairs=7, seed=1)
    assert len(rnd) == 7 and all(len(p["train"]) == 2 and p["test"] not in p["train"] for p in rnd)
    assert rnd == make_pairs(tasks, "random", n_train=2, n_pairs=7, seed=1)
