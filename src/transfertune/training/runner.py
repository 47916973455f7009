"""Run many trials: skip the stored ones, execute the rest in-process or on Dask.

Trials are independent jobs. With ``workers == 1`` and no scheduler address they run one after
another in this process; otherwise each trial is a task of a ``dask.distributed`` cluster, a
``LocalCluster`` of ``workers`` processes or the existing scheduler at ``scheduler_address``.
Each task trains and then writes its own trial file (:class:`TrialStore`), so a finished trial
is on disk even if the driver dies before it hears back.

On a GPU, ``workers > 1`` puts several worker processes on the device, each training its own
small model, which keeps the GPU busy where one small model alone would leave it idle; with
several GPUs, worker ``i`` uses GPU ``i mod n``.

Trials that raise (anything but a diverging loss, which is a result) are reported in
:class:`RunReport.errors` and not stored, so the next run retries them; the others go on.

Kedro-free; dask is imported only when Dask is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from transfertune.errors import ConfigurationError
from transfertune.training.hashing import config_hash
from transfertune.training.store import TrialKey, TrialStore
from transfertune.training.trainer import TaskData, train_trial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """How every trial of a run trains.

    ``model``, ``epochs``, ``fixed`` and ``options`` change the results and are part of each
    trial's fingerprint; ``device``, ``amp``, ``deterministic``, ``torch_threads`` and
    ``eval_batch_size`` are execution details (a run resumed on another device reuses trials).
    """

    model: str
    epochs: int
    fixed: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    amp: bool | str = "auto"
    deterministic: bool = True
    torch_threads: int | None = 1
    eval_batch_size: int = 1024

    def fingerprint(self) -> str:
        text = json.dumps(
            {"model": self.model, "epochs": int(self.epochs), "fixed": dict(self.fixed), "options": dict(self.options)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class TrialJob:
    """One trial to run: a task, a config (with its catalog id) and a seed."""

    task: str
    config_id: int
    seed: int
    config: Mapping[str, Any]
    key: TrialKey


@dataclass
class RunReport:
    """What a call to :func:`run_trials` did."""

    total: int = 0
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.completed + self.failed

    @property
    def trials_per_minute(self) -> float:
        return 60.0 * self.ran / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("trials")
        out["trials_per_minute"] = self.trials_per_minute
        return out


def make_jobs(
    tasks: Sequence[TaskData], configs: Sequence[Mapping[str, Any]], seeds: Sequence[int], settings: TrainSettings
) -> list[TrialJob]:
    """The trials of a catalog, config-major (config 0 on every task and seed, then config 1...),
    so an interrupted run leaves whole configs rather than whole tasks.

    ``configs[i]`` gets ``config_id = i``.
    """
    if not tasks or not configs or not seeds:
        raise ConfigurationError("a catalog needs at least one task, one config and one seed")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"task names must be unique; repeated: {sorted({n for n in names if names.count(n) > 1})}")
    task_fp = {t.name: t.fingerprint() for t in tasks}
    run_fp = settings.fingerprint()
    jobs = []
    for config_id, config in enumerate(configs):
        c_hash = config_hash(config)
        for task in tasks:
            for seed in seeds:
                fp = hashlib.sha1(f"{run_fp}|{task_fp[task.name]}|{c_hash}|{int(seed)}".encode()).hexdigest()[:16]
                jobs.append(TrialJob(task.name, config_id, int(seed), dict(config), TrialKey(task.name, config_id, int(seed), fp)))
    return jobs


def execute_trial(job: TrialJob, data: TaskData, settings: TrainSettings, store_root: str) -> dict[str, Any]:
    """Train one trial and store it; returns a small summary (runs in a Dask worker or in-process)."""
    import torch

    if settings.torch_threads:
        torch.set_num_threads(int(settings.torch_threads))
    result = train_trial(
        settings.model,
        job.config,
        data,
        settings.epochs,
        job.seed,
        device=worker_device(settings.device),
        amp=settings.amp,
        fixed=settings.fixed,
        options=settings.options,
        deterministic=settings.deterministic,
        eval_batch_size=settings.eval_batch_size,
    )
    TrialStore(store_root).write(job.key, result, extra={"model": settings.model, "config": dict(job.config)})
    last = result.records[-1] if result.records else {}
    return {
        "task": job.task,
        "config_id": job.config_id,
        "seed": job.seed,
        "status": result.status,
        "epochs": result.last_good_epoch,
        "wall_time_s": result.wall_time_s,
        "device": result.device,
        **{k: v for k, v in last.items() if k.startswith("val_")},
    }


def worker_device(device: str) -> str:
    """``auto`` on a multi-GPU host spreads Dask workers over the GPUs by worker index."""
    if device != "auto":
        return device
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    try:
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else int(hashlib.sha1(str(name).encode()).hexdigest(), 16)
    except (ImportError, ValueError):
        return device
    return f"cuda:{index % torch.cuda.device_count()}"


def run_trials(
    jobs: Sequence[TrialJob],
    data: Mapping[str, TaskData],
    settings: TrainSettings,
    store: TrialStore,
    workers: int = 1,
    scheduler_address: str | None = None,
    threads_per_worker: int = 1,
    progress: bool = True,
    on_trial_done: Callable[[dict[str, Any], RunReport], None] | None = None,
) -> RunReport:
    """Run every job whose trial is not stored yet.

    Args:
        jobs: from :func:`make_jobs`.
        data: task name -> :class:`TaskData` for every task the jobs name.
        settings: how to train.
        store: where finished trials go (on a shared filesystem for a remote cluster).
        workers: 1 runs in-process; more starts a Dask ``LocalCluster`` of that many processes.
        scheduler_address: use an existing Dask scheduler (``tcp://host:8786``) instead.
        threads_per_worker: threads per LocalCluster worker process.
        progress: show a tqdm progress bar.
        on_trial_done: called in this process after each finished trial with its summary and the
            running report (MLflow logging); an exception it raises stops the run.

    Returns:
        A :class:`RunReport`.
    """
    if int(workers) < 1:
        raise ConfigurationError(f"workers must be >= 1, got {workers}")
    missing = sorted({j.task for j in jobs} - set(data))
    if missing:
        raise ConfigurationError(f"no data for task(s) {missing}")
    store.root.mkdir(parents=True, exist_ok=True)
    store.clean_temporary()  # leftovers of a killed writer; no writer is running yet
    keys = [j.key.filename + j.task for j in jobs]
    if len(set(keys)) != len(keys):
        raise ConfigurationError("the job list repeats a (task, config, seed) trial")
    pending = [j for j in jobs if not store.is_done(j.key)]
    report = RunReport(total=len(jobs), skipped=len(jobs) - len(pending))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), initial=report.skipped, disable=not progress, desc=f"train {settings.model}", unit="trial")
    start = time.perf_counter()

    def finished(summary: dict[str, Any]) -> None:
        report.completed += summary["status"] == "completed"
        report.failed += summary["status"] == "failed"
        report.trials.append(summary)
        report.wall_time_s = time.perf_counter() - start
        bar.update(1)
        bar.set_postfix(failed=report.failed, errors=len(report.errors))
        if on_trial_done is not None:
            on_trial_done(summary, report)

    try:
        if int(workers) == 1 and not scheduler_address:
            for job in pending:
                try:
                    summary = execute_trial(job, data[job.task], settings, str(store.root))
                except Exception as exc:  # noqa: BLE001 - one broken trial must not stop the others
                    report.errors.append(_error(job, exc))
                    log.warning("trial %s config %s seed %s raised: %s", job.task, job.config_id, job.seed, exc)
                    bar.set_postfix(failed=report.failed, errors=len(report.errors))
                    continue
                finished(summary)
        elif pending:
            _run_dask(pending, data, settings, store, int(workers), scheduler_address, int(threads_per_worker), report, finished)
    finally:
        report.wall_time_s = time.perf_counter() - start
        bar.close()
    return report


def _run_dask(
    pending: Sequence[TrialJob],
    data: Mapping[str, TaskData],
    settings: TrainSettings,
    store: TrialStore,
    workers: int,
    scheduler_address: str | None,
    threads_per_worker: int,
    report: RunReport,
    finished: Callable[[dict[str, Any]], None],
) -> None:
    from distributed import as_completed

    futures = []
    with dask_client(workers, scheduler_address, threads_per_worker) as client:
        try:
            # Each task's arrays travel to the workers once, not once per trial.
            scattered = {name: client.scatter(data[name], hash=False) for name in sorted({j.task for j in pending})}
            by_key = {}
            for job in pending:
                future = client.submit(
                    execute_trial, job, scattered[job.task], settings, str(store.root), key=f"trial-{job.key.fingerprint}", pure=False
                )
                futures.append(future)
                by_key[future.key] = job
            for future in as_completed(futures):
                job = by_key[future.key]
                try:
                    summary = future.result()
                except Exception as exc:  # noqa: BLE001 - reported, retried by the next run
                    report.errors.append(_error(job, exc))
                    log.warning("trial %s config %s seed %s raised: %s", job.task, job.config_id, job.seed, exc)
                    continue
                finished(summary)
        finally:
            if futures:
                client.cancel(futures)


@contextmanager
def dask_client(workers: int, scheduler_address: str | None = None, threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``distributed.Client``: of the scheduler at ``scheduler_address``, or of a new
    ``LocalCluster`` of ``workers`` single-process workers (closed on exit)."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler_address:
        client = Client(scheduler_address)
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _error(job: TrialJob, exc: BaseException) -> dict[str, Any]:
    return {
        "task": job.task,
        "config_id": job.config_id,
        "seed": job.seed,
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-2000:],
    }
