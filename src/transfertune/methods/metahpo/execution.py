"""Where Meta-HPO and its baselines train: a pool of workers, and the training function of one trial.

:class:`WorkerPool` runs functions in this process (``workers == 1``) or as tasks of a
``dask.distributed`` cluster (a ``LocalCluster`` of ``workers`` processes, or the scheduler at
``scheduler_address``), as the train stage does. Every method of one experiment gets the same pool,
so the same number of trials run at once for all of them. The pool is started, and every
worker has imported torch and SMAC, before any method's clock starts.

:func:`train_epochs` trains one config on one task (all its rows, or ``rows`` of them) from epoch 0
to ``epochs``, stopping after the epoch in which ``deadline`` (``time.time()``) passes: the
wall-clock budget of the baselines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transfertune.errors import ConfigurationError
from transfertune.training.runner import TrainSettings, dask_client, worker_device
from transfertune.training.trainer import TaskData, TrainingRun, divergence


class _Done:
    """A finished in-process call, shaped like a Dask future."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            self._value, self._error = fn(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001 - re-raised by result(), as a Dask future does
            self._value, self._error = None, exc

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def _warm_up() -> bool:
    """Import what trials need, so no method pays a worker's imports on its clock."""
    import smac  # noqa: F401
    import torch  # noqa: F401

    from transfertune.training.trainer import TrainingRun  # noqa: F401

    return True


class WorkerPool:
    """In-process (``workers == 1``, no scheduler) or Dask; use as a context manager.

    Attributes:
        workers: trials in flight at once.
    """

    def __init__(self, workers: int = 1, scheduler_address: str | None = None, threads_per_worker: int = 1) -> None:
        if isinstance(workers, bool) or int(workers) != workers or workers < 1:
            raise ConfigurationError(f"execution.workers must be a positive integer, got {workers!r}")
        self.workers = int(workers)
        self.scheduler_address = scheduler_address
        self.threads_per_worker = int(threads_per_worker)
        self.client = None
        self._context = None

    @property
    def local(self) -> bool:
        return self.workers == 1 and not self.scheduler_address

    def __enter__(self) -> "WorkerPool":
        if not self.local:
            self._context = dask_client(self.workers, self.scheduler_address, self.threads_per_worker)
            self.client = self._context.__enter__()
            self.client.run(_warm_up)
        else:
            _warm_up()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)
            self.client = self._context = None

    def scatter(self, value: Any) -> Any:
        """``value`` on the workers once (a future to pass to :meth:`submit`), or itself in-process."""
        if self.local:
            return value
        return self.client.scatter(value, broadcast=True, hash=False)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.local:
            return _Done(fn, args, kwargs)
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def wait_first(self, futures: Iterable[Any]) -> list[Any]:
        """The futures among ``futures`` that are done (at least one; blocks until then)."""
        futures = list(futures)
        if self.local:
            return futures
        from distributed import wait

        return list(wait(futures, return_when="FIRST_COMPLETED").done)

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """``[fn(item, *args, **kwargs) for item in items]`` on the workers, results in order."""
        futures = [self.submit(fn, item, *args, **kwargs) for item in items]
        return [f.result() for f in futures]


@dataclass
class EpochsResult:
    """What :func:`train_epochs` did.

    Attributes:
        records: one dict per trained epoch (``epoch`` and the metrics of the trainer).
        status: ``completed``, ``cut`` (the deadline passed first) or ``failed`` (non-finite loss).
        reason: why it is not completed.
        seconds: wall time in the worker.
    """

    records: list[dict[str, float]]
    status: str
    reason: str = ""
    seconds: float = 0.0


def train_epochs(
    task: TaskData,
    settings: TrainSettings,
    config: Mapping[str, Any],
    epochs: int,
    seed: int,
    deadline: float | None = None,
    rows: np.ndarray | None = None,
) -> EpochsResult:
    """Train ``config`` on ``task`` (its training rows ``rows`` only, when given) for ``epochs``
    epochs from scratch, each epoch scored on the task's whole validation part."""
    import torch

    start = time.perf_counter()
    if settings.torch_threads:
        torch.set_num_threads(int(settings.torch_threads))
    if rows is not None:
        rows = np.asarray(rows)
        task = TaskData(task.name, task.X_train[rows], task.y_train[rows], task.X_val, task.y_val, task.task_type, task.n_classes, task.meta)
    run = TrainingRun(settings.model, config, task, seed, device=worker_device(settings.device), amp=settings.amp, fixed=settings.fixed,
                      options=settings.options, deterministic=settings.deterministic, eval_batch_size=settings.eval_batch_size)
    records: list[dict[str, float]] = []
    status, reason = "completed", ""
    while run.epoch < int(epochs):
        if deadline is not None and time.time() >= deadline:
            status, reason = "cut", f"the wall-clock budget ended after epoch {run.epoch}"
            break
        record = run.train_epoch()
        why = divergence(record)
        if why:
            status, reason = "failed", why
            break
        records.append(record)
    return EpochsResult(records, status, reason, time.perf_counter() - start)
