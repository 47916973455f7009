"""TrainingObjective: the live counterpart of :class:`~transfertune.core.objectives.TabularObjective`.

It answers a :class:`~transfertune.core.trials.Trial` by training a target model of the train
stage (:mod:`transfertune.training.models`) with the trial's config on one task, to the asked
epoch. A trial continues from its last checkpoint, so one more epoch costs one epoch:

    objective = TrainingObjective(task_data, TrainSettings("mlp", epochs=10), "store/trials")
    progress = objective.evaluate(Trial(0, config, epoch=3))    # trains epochs 1..3
    progress = objective.evaluate(Trial(0, config, epoch=4, start_epoch=3))  # loads epoch 3, trains 4

After every epoch the checkpoint (model, optimizer, scheduler, scaler and RNG states: see
:class:`~transfertune.training.trainer.TrainingRun`) and the per-epoch rows go to the trial's
files in a :class:`~transfertune.training.store.LiveTrialStore`, atomically; a killed run resumes
from them with no epoch lost or trained twice. A non-finite loss ends the trial as failed (its
good epochs stay). Every trial trains with the same ``seed``, so a config's curve does not
depend on which method asked for it. The work is a plain function of picklable arguments
(:func:`train_to`), which is what a Dask worker runs; CUDA is used when present.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError, ProtocolError, StoreError
from transfertune.training.runner import TrainSettings, worker_device
from transfertune.training.store import LiveTrialState, LiveTrialStore
from transfertune.training.trainer import TaskData, TrainingRun, divergence, metric_names

if TYPE_CHECKING:
    from transfertune.core.spaces import SearchSpace


@dataclass
class TrialProgress:
    """What a trial has after one :meth:`TrainingObjective.evaluate` call.

    Attributes:
        trial_id: the trial.
        records: every stored epoch, 1..k (``epoch`` and the metric columns).
        status: ``running`` or ``failed`` (diverged: never continued).
        reason: why it failed.
        trained: epochs this call trained (0 when the store already had them).
        wall_time_s: seconds of this call: loading the checkpoint, training, storing.
        device: where it trained.
        load_s, save_s: of which loading (files, model, checkpoint) and storing (fsync-ed).
    """

    trial_id: int
    records: list[dict[str, Any]]
    status: str = "running"
    reason: str = ""
    trained: int = 0
    wall_time_s: float = 0.0
    device: str = "cpu"
    load_s: float = field(default=0.0, repr=False)
    save_s: float = field(default=0.0, repr=False)

    @property
    def epochs(self) -> int:
        return len(self.records)


class TrainingObjective:
    """Train ``settings.model`` on ``data`` for each asked trial, resuming from its checkpoint.

    Args:
        data: the task (see :mod:`transfertune.training.tasks`).
        settings: model, maximal fidelity ``epochs``, fixed settings and execution options.
        store: folder of the per-trial files.
        seed: training seed of every trial (initial weights, dropout, batch order).
        metric: the objective column of the records (higher is better): ``val_acc`` for
            classification, ``val_r2`` for regression.
        space: when given, each trial's config is checked against it before training.
    """

    def __init__(
        self, data: TaskData, settings: TrainSettings, store: str | Path, seed: int = 0, metric: str | None = None, space: "SearchSpace | None" = None
    ) -> None:
        metric = metric or ("val_r2" if data.task_type == "regression" else "val_acc")
        known = metric_names(data.task_type)
        if metric not in known:
            raise ConfigurationError(f"metric {metric!r} is not recorded for a {data.task_type} task; choose one of {known}")
        self.data, self.settings, self.seed, self.metric, self.space = data, settings, int(seed), metric, space
        self.store = LiveTrialStore(store)
        text = f"{settings.fingerprint()}|{data.fingerprint()}|{self.seed}"
        self.fingerprint = hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def max_epochs(self) -> int:
        return int(self.settings.epochs)

    def check(self, trial: Trial) -> None:
        """One-line errors for a trial this objective cannot train."""
        if self.space is not None:
            problems = self.space.problems(trial.config)
            if problems:
                raise ProtocolError(f"trial {trial.trial_id}: config outside the space '{self.space.name}': " + "; ".join(problems))
        if not 1 <= trial.epoch <= self.max_epochs:
            raise ProtocolError(f"trial {trial.trial_id}: epoch {trial.epoch} is outside 1..{self.max_epochs} (settings.epochs)")

    def evaluate(self, trial: Trial) -> TrialProgress:
        """Train the trial to ``trial.epoch`` in this process (see :func:`train_to`)."""
        self.check(trial)
        return train_to(trial, self.data, self.settings, str(self.store.root), self.seed, self.fingerprint)

    def stored(self, trial_id: int) -> LiveTrialState:
        """The trial's stored epochs and status (no checkpoint)."""
        return self.store.load(trial_id, checkpoint=False)


def train_to(trial: Trial, data: TaskData, settings: TrainSettings, store_root: str, seed: int, fingerprint: str) -> TrialProgress:
    """Bring ``trial`` to ``trial.epoch`` epochs: load what its files hold, train the rest.

    Epochs the store already has are not trained again (a rerun after a kill, or a driver that
    died before hearing back); a failed trial is not trained at all. Runs in a Dask worker or
    in-process; returns every stored epoch.
    """
    import torch

    start = time.perf_counter()
    if settings.torch_threads:
        torch.set_num_threads(int(settings.torch_threads))
    store = LiveTrialStore(store_root)
    stored = store.load(trial.trial_id)
    meta = {"task": data.name, "config": dict(trial.config), "seed": int(seed), "model": settings.model, "fingerprint": fingerprint}
    if stored.checkpoint is not None:
        before = json.loads(stored.checkpoint["meta"])
        if before.get("fingerprint") != fingerprint or before.get("config") != meta["config"]:
            raise StoreError(
                f"{store.checkpoint_path(trial.trial_id)} holds trial {trial.trial_id} trained with another config, task or "
                "settings; use a new store folder for other settings"
            )
    records = list(stored.records)
    load_s = time.perf_counter() - start
    progress = TrialProgress(trial.trial_id, records, stored.status, stored.reason)
    if stored.status == "failed" or len(records) >= trial.epoch:
        progress.wall_time_s = progress.load_s = time.perf_counter() - start
        return progress
    run = TrainingRun(
        settings.model, trial.config, data, seed, device=worker_device(settings.device), amp=settings.amp, fixed=settings.fixed,
        options=settings.options, deterministic=settings.deterministic, eval_batch_size=settings.eval_batch_size,
    )
    if records:
        if stored.checkpoint is None or int(stored.checkpoint["run"]["epoch"]) != len(records):
            raise StoreError(f"{store.checkpoint_path(trial.trial_id)}: no checkpoint of epoch {len(records)} to continue trial {trial.trial_id} from")
        run.load_state_dict(stored.checkpoint["run"])
    load_s = time.perf_counter() - start
    while run.epoch < trial.epoch:
        record = run.train_epoch()
        reason = divergence(record)
        if reason:
            store.save_failure(trial.trial_id, records, reason, meta)
            progress.status, progress.reason = "failed", reason
            break
        records.append(record)
        progress.trained += 1
        saving = time.perf_counter()
        store.save_epoch(trial.trial_id, records, {"run": run.state_dict()}, meta)
        progress.save_s += time.perf_counter() - saving
    progress.device = str(run.device)
    progress.load_s = load_s
    progress.wall_time_s = time.perf_counter() - start
    return progress
