"""Run a :class:`~transfertune.live.tuner.Tuner` against a
:class:`~transfertune.training.objective.TrainingObjective`: live tuning, in-process or on Dask.

With ``workers == 1`` (and no scheduler) trials train one after another in this process. With
more, up to ``workers`` trials are in flight at once on a ``dask.distributed`` cluster (a
``LocalCluster`` or the scheduler at ``scheduler_address``, as the train stage runs its
trials): whenever one comes back its epochs are told, and the tuner is asked again. A method
that cannot start anything before a result (``ask`` gives None) simply waits.

Every epoch a worker trains is in the trial's files before the worker returns; the driver then
tells the tuner, whose event log is on disk before the next ask. So after a kill at any point, a
rerun (same store) replays the log, asks the interrupted trials again, finds their trained
epochs in the trial files and tells those without training them again: no epoch is lost or
counted twice. A trial whose loss diverges is told as failed; one that raises (out of memory,
a bug) is failed with the error as its reason and listed in the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transfertune.core.objectives import BudgetExhausted
from transfertune.core.trials import Trial
from transfertune.errors import TransfertuneError
from transfertune.live.tuner import Tuner
from transfertune.training.objective import TrainingObjective, TrialProgress, train_to

log = logging.getLogger(__name__)


@dataclass
class LiveReport:
    """What one :func:`run_live` call did (earlier sessions of the same store not included).

    ``units`` are the work units (one trial brought to its asked epoch); ``epochs_trained``
    counts epochs trained here, ``epochs_recovered`` epochs found in the trial files and told
    without training (a resumed run).
    """

    units: int = 0
    epochs_trained: int = 0
    epochs_recovered: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def run_live(
    tuner: Tuner,
    objective: TrainingObjective,
    workers: int = 1,
    scheduler_address: str | None = None,
    threads_per_worker: int = 1,
    progress: bool = True,
    on_tell: Callable[[dict[str, Any]], None] | None = None,
) -> LiveReport:
    """Tune until the tuner's budget (epochs or seconds) is spent; returns a :class:`LiveReport`.

    Args:
        tuner: its store should be the folder above ``objective.store`` (see
            ``Tuner.trial_dir``), so that both survive together.
        objective: trains the trials.
        workers: trials in flight at once; 1 runs in-process, more on a Dask ``LocalCluster``.
        scheduler_address: an existing Dask scheduler instead (its workers need the store folder).
        threads_per_worker: threads per LocalCluster worker process.
        progress: a tqdm bar of epochs.
        on_tell: called with each told epoch's row of ``tuner.history()`` (MLflow logging).
    """
    from tqdm.auto import tqdm

    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if tuner.problem.max_epochs > objective.max_epochs:
        raise ValueError(f"the tuner plans up to epoch {tuner.problem.max_epochs}; the objective trains at most {objective.max_epochs}")
    objective.store.root.mkdir(parents=True, exist_ok=True)
    objective.store.clean_temporary()  # a killed writer's leftovers; no writer runs yet
    report = LiveReport()
    bar = tqdm(total=tuner.problem.budget, initial=len(tuner.told), desc=f"tune {tuner.method_name}", unit="epoch", disable=not progress)

    def finish(trial: Trial, result: TrialProgress | BaseException) -> None:
        report.units += 1
        if isinstance(result, TransfertuneError):
            raise result  # a store written with other settings, a bad config: the user's to fix
        if isinstance(result, BaseException):
            reason = f"{type(result).__name__}: {result}"
            report.errors.append({"trial": trial.trial_id, "config": dict(trial.config), "error": reason})
            log.warning("trial %d raised: %s", trial.trial_id, reason)
            tuner.fail(trial, reason)
            report.failed += 1
            return
        new = result.records[trial.start_epoch : trial.epoch]
        report.epochs_trained += result.trained
        report.epochs_recovered += len(new) - min(result.trained, len(new))
        for record in new:
            metrics = {k: v for k, v in record.items() if k != "epoch"}
            tuner.tell(trial, int(record["epoch"]), metrics)
            bar.update(1)
            if on_tell is not None:
                on_tell(tuner.told[-1])
        if result.status == "failed" and trial.trial_id in tuner.searcher.in_flight:
            tuner.fail(trial, result.reason)
            report.failed += 1

    try:
        if int(workers) == 1 and not scheduler_address:
            while True:
                trial = _ask(tuner)
                if trial is None:
                    break
                objective.check(trial)
                try:
                    result: TrialProgress | BaseException = objective.evaluate(trial)
                except Exception as exc:  # noqa: BLE001 - one broken trial must not stop the run
                    result = exc
                finish(trial, result)
        else:
            _run_dask(tuner, objective, int(workers), scheduler_address, int(threads_per_worker), finish)
    finally:
        bar.close()
    return report


def _ask(tuner: Tuner, running: int = 0) -> Trial | None:
    """The next trial; None when the budget is spent, or when the method waits for one of the
    ``running`` trials (waiting with none running is a method's bug)."""
    try:
        trial = tuner.ask()
    except BudgetExhausted:
        return None
    if trial is None and not running:
        raise RuntimeError(f"method {tuner.method_name!r} asked for nothing while no trial was in flight")
    return trial


def _run_dask(
    tuner: Tuner,
    objective: TrainingObjective,
    workers: int,
    scheduler_address: str | None,
    threads_per_worker: int,
    finish: Callable[[Trial, TrialProgress | BaseException], None],
) -> None:
    from distributed import as_completed

    from transfertune.training.runner import dask_client

    with dask_client(workers, scheduler_address, threads_per_worker) as client:
        data = client.scatter(objective.data, broadcast=True, hash=False)  # the task's arrays travel once
        running: dict[Any, Trial] = {}
        done = as_completed()

        def fill() -> None:
            while len(running) < workers:
                trial = _ask(tuner, len(running))
                if trial is None:
                    break
                objective.check(trial)
                future = client.submit(
                    train_to, trial, data, objective.settings, str(objective.store.root), objective.seed, objective.fingerprint, pure=False
                )
                running[future.key] = trial
                done.add(future)

        fill()
        for future in done:
            trial = running.pop(future.key)
            try:
                result: TrialProgress | BaseException = future.result()
            except Exception as exc:  # noqa: BLE001 - reported as the trial's failure
                result = exc
            finish(trial, result)
            fill()
