"""``transfertune.Tuner``: ask/tell tuning for a user's own training loop, crash-safe.

::

    from transfertune import Tuner

    with Tuner(database="data/01_raw/digits_mlp", method="at2", store="runs/mine", budget=40, task="mine") as tuner:
        for trial in tuner:                                 # until the budget is spent
            model = build(trial.config)                     # trial.config: a dict of the space
            if trial.start_epoch:                           # continuing the trial: its state after start_epoch
                model.load_state_dict(tuner.load_checkpoint(trial)["model"])
            for epoch in range(trial.start_epoch + 1, trial.epoch + 1):
                accuracy = train_one_epoch(model)
                tuner.tell(trial, epoch, {"val_acc": accuracy}, checkpoint={"model": model.state_dict()})
        print(tuner.recommend())

State lives in the ``store`` folder: the settings and every ask, tell and fail, as an
append-only event log (:mod:`transfertune.live.events`). Opening a store that has events
replays them into a freshly fitted method: every ``ask`` is asked again and must give the trial
the log holds (methods are deterministic given their seed and history), every ``tell`` and
``fail`` is told again. Nothing is pickled. Trials that were in flight when the last process
stopped are asked again first, with ``start_epoch`` = the epochs told, so the loop continues
them. One process per store (a lock).

``tell(..., checkpoint=state)`` keeps the caller's training state (a dict of state dicts) with the
trial, written atomically before the tell is logged, together with every metric told so far;
``load_checkpoint(trial)`` gives it back (``torch.load(weights_only=True)``). If a crash falls
between the two writes, the re-asked trial's missing epochs are told from the checkpoint and its
``start_epoch`` is the checkpoint's epoch: no epoch is trained twice or lost.

The method's torch random number generator is kept apart from the caller's (each call runs on
its own saved CPU generator state), so training in the same process does not change what the
method asks, and a replay reproduces it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfertune.core.catalog import ObservationCatalog
from transfertune.core.objectives import BudgetExhausted
from transfertune.core.params import PROJECT_ROOT, resolve_path
from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError, ProtocolError, StoreError
from transfertune.live.events import EVENTS_FILE, EventLog, StoreLock
from transfertune.methods.base import TransferProblem
from transfertune.methods.protocol import PoolSearcher, SearchProblem, Searcher
from transfertune.methods.registry import make_searcher

LOG_VERSION = 1
TRIALS_DIR = "trials"


def load_space(space: SearchSpace | str | Path | Mapping[str, Any]) -> SearchSpace:
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        return SearchSpace.from_dict(space)
    return SearchSpace.from_yaml(space)


def load_database(database: ObservationCatalog | str | Path, space: SearchSpace | str | Path | Mapping | None, metric: str) -> ObservationCatalog:
    """A catalog object as is, or a catalog folder (its space: ``space``, else ``<folder>/space.yml``)."""
    if isinstance(database, ObservationCatalog):
        return database
    folder = resolve_path(database)
    if not folder.is_dir():
        raise ConfigurationError(
            f"database folder {database} does not exist (looked in {Path.cwd()} and in the project {PROJECT_ROOT})"
        )
    own = folder / "space.yml"
    if space is None:
        if not own.is_file():
            raise ConfigurationError(f"database {folder} has no space.yml; pass space= (a YAML file, a dict or a SearchSpace)")
        return ObservationCatalog.load(folder, load_space(own), metric)
    space = load_space(resolve_path(space) if isinstance(space, (str, Path)) else space)
    if own.is_file() and not same_space(space, load_space(own)):
        raise ConfigurationError(f"the space '{space.name}' differs from the database's {own}; tune on the database's space")
    return ObservationCatalog.load(folder, space, metric)


def same_space(a: SearchSpace, b: SearchSpace) -> bool:
    """Same hyperparameters (names, types, ranges, scales, choices, conditions), in the same order."""
    return [dataclasses.asdict(h) for h in a.hyperparameters] == [dataclasses.asdict(h) for h in b.hyperparameters]


def search_problem(
    searcher: Searcher,
    space: SearchSpace | None,
    database: ObservationCatalog | None,
    task: str,
    budget: int,
    seed: int,
    metric: str,
    max_epochs: int | None = None,
    train_tasks: list[str] | None = None,
    data_seed: int = 0,
    pool_size: int = 64,
) -> SearchProblem:
    """The :class:`SearchProblem` of a live run.

    With a database, the pool is its configs and the training tasks are its tasks (all but
    ``task``, or ``train_tasks``); the curves are those of seed ``data_seed``. Without one, a
    pool method that does not transfer gets ``pool_size`` configs sampled from the space with no
    training tasks; a transfer method is refused.
    """
    pool_method = isinstance(searcher, PoolSearcher)
    if budget is None or isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ConfigurationError(f"budget must be a positive number of epochs, got {budget!r}")
    if database is None:
        if space is None:
            raise ConfigurationError("give a search space (space=...) or a database whose space.yml names one")
        if max_epochs is None:
            raise ConfigurationError("without a database, max_epochs (the longest a trial trains) must be given")
        if pool_method and searcher.uses_transfer:
            raise ConfigurationError(f"method {searcher.name!r} transfers from past tuning: give it a database of tuning on this space")
        history = None
        if pool_method:
            configs = space.sample(int(pool_size), seed=int(seed))
            n = len(configs)
            history = TransferProblem(
                config_ids=np.arange(n), configs=configs, X=space.encode(configs), space=space, n_epochs=int(max_epochs),
                train_tasks=(), train_grids=np.empty((0, n, int(max_epochs))), test_task=task,
                trial_length=np.full(n, int(max_epochs)), budget=int(budget), seed=int(seed),
            )
        return SearchProblem(space, int(max_epochs), int(budget), int(seed), task, metric, history)
    if space is not None and not same_space(space, database.space):
        raise ConfigurationError(f"the space '{space.name}' differs from the database's space '{database.space.name}'; tune on the database's space")
    if task in database.tasks:
        raise ConfigurationError(f"task {task!r} is a task of the database; name the task being tuned differently")
    tasks = list(train_tasks) if train_tasks else list(database.tasks)
    unknown = sorted(set(tasks) - set(database.tasks))
    if unknown:
        raise ConfigurationError(f"train_tasks {unknown} are not tasks of the database ({len(database.tasks)} tasks)")
    max_epochs = int(max_epochs or database.max_epoch)
    if pool_method and max_epochs > database.max_epoch:
        raise ConfigurationError(
            f"method {searcher.name!r} plans over the database's {database.max_epoch} recorded epochs; max_epochs {max_epochs} is past them"
        )
    n = len(database.config_ids)
    history = TransferProblem(
        config_ids=database.config_ids.copy(),
        configs=[database.configs[int(c)] for c in database.config_ids],
        X=database.encoded_configs.copy(),
        space=database.space,
        n_epochs=database.max_epoch,
        train_tasks=tuple(tasks),
        train_grids=database.grids(tasks, data_seed),
        test_task=task,
        trial_length=np.full(n, min(max_epochs, database.max_epoch)),
        budget=int(budget),
        seed=int(seed),
    )
    return SearchProblem(database.space, max_epochs, int(budget), int(seed), task, metric, history, database)


class Tuner:
    """Ask/tell tuning with a transfer prior, for any training loop (see the module docstring).

    Args:
        database: past tuning on the same space: a catalog folder (HyperRec layout, e.g. one
            written by ``build_catalog``) or an :class:`ObservationCatalog`; None for none.
        space: the search space (YAML path, dict or :class:`SearchSpace`); default: the
            database's ``space.yml``.
        method: a registered method (``at2``, ``zero_shot``, ``random_space``, ...).
        store: folder that keeps the run (created); None keeps it in memory only.
        method_options: the method's constructor keywords.
        metric: the metric told for each epoch, and the database column to transfer from
            (the database's column is higher-is-better, as every catalog's).
        direction: ``maximize`` (default) or ``minimize`` the told ``metric``: a minimised
            metric is negated before the method sees it (so it transfers from a database column
            that holds the negated metric, as an imported minimised study does); ``history()``,
            ``recommend()`` and ``forecast()`` speak the metric as told.
        budget: epochs to spend in all.
        budget_seconds: stop asking after this many seconds of tuning (summed over sessions).
        max_epochs: the longest a trial trains (default: the database's epochs).
        seed: seed of the method.
        task: name of the task being tuned (must not be a database task).
        train_tasks: database tasks to transfer from (default: all).
        data_seed: which recorded seed of the database's curves to use.
        pool_size: pool configs sampled from the space for a pool method without a database.
        progress: a tqdm bar of epochs in ``for trial in tuner`` and :meth:`optimize` (None: when
            stderr is a terminal).
    """

    def __init__(
        self,
        database: ObservationCatalog | str | Path | None = None,
        space: SearchSpace | str | Path | Mapping[str, Any] | None = None,
        method: str = "at2",
        store: str | Path | None = None,
        *,
        method_options: Mapping[str, Any] | None = None,
        metric: str = "val_acc",
        budget: int = 100,
        budget_seconds: float | None = None,
        max_epochs: int | None = None,
        seed: int = 0,
        task: str = "live",
        train_tasks: list[str] | None = None,
        data_seed: int = 0,
        pool_size: int = 64,
        direction: str = "maximize",
        progress: bool | None = None,
    ) -> None:
        import torch

        if direction not in ("maximize", "minimize"):
            raise ConfigurationError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        self.direction = direction
        self._sign = -1.0 if direction == "minimize" else 1.0
        self.progress = progress
        self._bar = None
        self._held: Trial | None = None  # asked by optimize() past its n_trials: the next call starts it

        self._elapsed_before, self._started = 0.0, time.perf_counter()
        self.method_name = str(method)
        self.method_options = dict(method_options or {})
        self.budget_seconds = None if budget_seconds is None else float(budget_seconds)
        space_obj = load_space(space) if space is not None else None
        catalog = load_database(database, space, metric) if database is not None else None
        self.searcher = make_searcher(self.method_name, dict(self.method_options))
        self.problem = search_problem(
            self.searcher, space_obj, catalog, str(task), budget, int(seed), str(metric), max_epochs, train_tasks, int(data_seed), int(pool_size)
        )
        self.store = Path(store) if store is not None else None
        self._lock = StoreLock(self.store) if self.store is not None else None
        self._log = EventLog(self.store / EVENTS_FILE) if self.store is not None else None
        try:
            events = self._log.read() if self._log is not None else []
            header = self._header()
            if events:
                self._check_header(events[0], header)
            elif self._log is not None:
                self._log.append(header)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.problem.seed)
                self.searcher.setup(self.problem)
                self._rng_state = torch.get_rng_state()
            self.told: list[dict[str, Any]] = []
            if len(events) > 1:
                self._replay(events[1:])
                self._started = time.perf_counter()  # a new run counts its offline fit; a resumed one not its replay
                print(f"resumed: {len(self.searcher.trials)} trials, {self.searcher.epochs_told} epochs ({self.store})", file=sys.stderr)
        except BaseException:
            self.close()
            raise
        self._orphans: deque[int] = deque(self.searcher.in_flight)  # in flight when the last process stopped

    # ------------------------------------------------------------------ the protocol
    def ask(self) -> Trial | None:
        """The next trial (None: nothing can start until a trial in flight is told).

        Raises :class:`BudgetExhausted` when the epoch or time budget is spent.
        """
        if self.budget_seconds is not None and self.elapsed >= self.budget_seconds:
            raise BudgetExhausted(f"the time budget of {self.budget_seconds:g} s is spent ({self.elapsed:.1f} s)")
        while self._orphans:
            state = self.searcher.trials[self._orphans.popleft()]
            self._tell_from_checkpoint(state.trial_id)
            if state.in_flight:
                return Trial(state.trial_id, dict(state.config), state.target, state.told, state.pool_index)
        trial = self._call(self.searcher.ask)
        self._write({"event": "ask", "trial": None if trial is None else trial.as_dict()})
        return None if trial is None else dataclasses.replace(trial, config=dict(trial.config))

    def tell(self, trial: Trial | int, epoch: int, metrics: Mapping[str, Any] | float, checkpoint: Mapping[str, Any] | None = None) -> None:
        """Report ``trial``'s metrics after ``epoch`` (each epoch once, in order).

        ``checkpoint``: the caller's training state after this epoch (state dicts), kept with
        the trial for :meth:`load_checkpoint`; needs a store.
        """
        metrics = self._internal(metrics)
        state, _, values = self.searcher.check_tell(trial, epoch, metrics)
        if checkpoint is not None:
            self._save_checkpoint(state.trial_id, int(epoch), checkpoint, [*state.metrics, values])
        self._call(self.searcher.tell, trial, epoch, metrics)
        event = {"event": "tell", "trial": state.trial_id, "epoch": int(epoch), "metrics": state.metrics[-1], "t": round(self.elapsed, 6)}
        self._write(event)
        self._record(event)

    def fail(self, trial: Trial | int, reason: str = "") -> None:
        """Record a diverged or broken trial: it keeps its told epochs and is never continued."""
        self._call(self.searcher.fail, trial, reason)
        trial_id = trial.trial_id if isinstance(trial, Trial) else int(trial)
        self._write({"event": "fail", "trial": trial_id, "reason": str(reason), "t": round(self.elapsed, 6)})

    def recommend(self) -> "Recommendation | None":
        """The config the method would pick now (a dict), with the method's forecast of its metric
        at the final epoch (``.mean``, ``.std``; None for a method without a posterior)."""
        config = self._call(self.searcher.recommend)
        if config is None:
            return None
        return Recommendation(config, **self._forecast_of(config))

    def forecast(self) -> pd.DataFrame | None:
        """The method's forecast of the metric at epoch ``max_epochs``, one row per pool config:
        ``pool_index, config_id, mean, std, told`` (epochs told), in the direction told; None for a
        method without a posterior over curves (:func:`posterior`: AT2's; the others pick configs
        without one, and no spread is invented for them)."""
        found = self._call(posterior, self.searcher)
        if found is None:
            return None
        mean, std = found
        e = self.problem.max_epochs - 1
        history = self.problem.history
        told = np.zeros(len(mean), dtype=np.int64)
        for state in self.searcher.trials.values():
            if state.pool_index is not None:
                told[state.pool_index] = state.told
        return pd.DataFrame({"pool_index": np.arange(len(mean)), "config_id": history.config_ids, "mean": self._sign * mean[:, e],
                             "std": std[:, e], "told": told})

    def observe(self, config: Mapping[str, Any], values: list[float] | list[Mapping[str, Any]]) -> Trial | None:
        """Tell the epochs ``1..len(values)`` of a config the method did not ask: the task's first
        observations made elsewhere (a CSV, another tool's study). A pool method knows only its
        pool's configs: for a config outside it nothing is told and None is returned. The epochs
        count against the budget; they are logged, and a resumed store tells them again."""
        if not len(values):
            raise ConfigurationError("observe: give the values of epochs 1..E (none given)")
        trial = self._call(register_trial, self.searcher, config, len(values))
        if trial is None:
            return None
        self._write({"event": "observe", "trial": trial.as_dict()})
        for epoch in range(1, trial.epoch + 1):
            self.tell(trial, epoch, values[epoch - 1])
        return trial

    def optimize(self, objective, n_trials: int | None = None, budget: int | None = None) -> "Recommendation | None":
        """Ask, train and tell until the tuner's budget (epochs, seconds) is spent, or ``n_trials``
        new trials were started, or ``budget`` more epochs were told in this call; returns
        :meth:`recommend`.

        ``objective(trial)`` trains ``trial.config`` through epochs ``trial.start_epoch + 1 ..
        trial.epoch`` and yields (or returns, as a list) each epoch's metrics: a number, a dict
        holding ``metric``, or a pair ``(metrics, checkpoint)`` (state dicts, for
        :meth:`load_checkpoint` when the method continues the trial). A non-finite metric fails
        the trial and the search goes on; an exception fails the trial and is raised.
        """
        import math

        started_here, told_here = 0, 0
        with self._progress_bar():
            while True:
                if budget is not None and told_here >= int(budget):
                    break
                trial = self._held
                self._held = None
                if trial is None:
                    try:
                        trial = self.ask()
                    except BudgetExhausted:
                        break
                    if trial is None:
                        raise ProtocolError(f"method {self.method_name!r} waits for a trial in flight ({self.searcher.in_flight})")
                if trial.start_epoch == 0 and len(self.searcher.trials[trial.trial_id].values) == 0:
                    if n_trials is not None and started_here >= int(n_trials):
                        self._held = trial
                        break
                    started_here += 1
                epoch = trial.start_epoch
                try:
                    for item in objective(trial):
                        metrics, checkpoint = item if isinstance(item, tuple) else (item, None)
                        value = metrics.get(self.problem.metric) if isinstance(metrics, Mapping) else metrics
                        if value is not None and not math.isfinite(float(value)):
                            self.fail(trial, f"{self.problem.metric}={value} at epoch {epoch + 1}")
                            break
                        epoch += 1
                        self.tell(trial, epoch, metrics, checkpoint=checkpoint)
                        told_here += 1
                        if epoch == trial.epoch:
                            break
                    else:
                        if epoch < trial.epoch:
                            self.fail(trial, f"the objective yielded {epoch - trial.start_epoch} of {trial.epoch - trial.start_epoch} epochs")
                except BaseException as exc:
                    if trial.trial_id in self.searcher.in_flight:
                        self.fail(trial, f"{type(exc).__name__}: {exc}")
                    raise
        return self.recommend()

    def load_checkpoint(self, trial: Trial | int) -> dict[str, Any]:
        """The training state saved with the trial's last told epoch (``tell(..., checkpoint=)``)."""
        import torch

        trial_id = trial.trial_id if isinstance(trial, Trial) else int(trial)
        told = self.searcher.trials[trial_id].told if trial_id in self.searcher.trials else 0
        path = self._checkpoint_path(trial_id)
        saved = torch.load(path, weights_only=True) if path.is_file() else None
        if saved is None or int(saved["epoch"]) != told:
            raise ProtocolError(
                f"trial {trial_id} has {told} epoch(s) told but "
                + (f"its checkpoint is of epoch {int(saved['epoch'])}" if saved else "no checkpoint")
                + "; pass checkpoint= with every tell of a trial you want to continue"
            )
        return saved["state"]

    def __iter__(self) -> Iterator[Trial]:
        """Ask until the budget is spent; for a loop that tells each trial before the next ask."""
        with self._progress_bar():
            while True:
                try:
                    trial = self.ask()
                except BudgetExhausted:
                    return
                if trial is None:
                    raise ProtocolError(f"method {self.method_name!r} waits for a trial in flight ({self.searcher.in_flight}): tell it before asking again")
                yield trial

    def _progress_bar(self):
        """A tqdm bar of the epochs told, while a loop runs (``progress``; None: stderr is a terminal)."""
        import contextlib

        from tqdm.auto import tqdm

        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show or self._bar is not None:
            return contextlib.nullcontext()
        self._bar = tqdm(total=self.problem.budget, initial=len(self.told), desc=f"{self.method_name} on {self.problem.task}", unit="epoch")

        @contextlib.contextmanager
        def running():
            try:
                yield self._bar
            finally:
                self._bar.close()
                self._bar = None

        return running()

    # ------------------------------------------------------------------ state
    @property
    def remaining(self) -> int:
        """Epochs of budget neither told nor in flight."""
        return self.searcher.remaining

    @property
    def elapsed(self) -> float:
        """Seconds of tuning (the method's offline fit included), summed over the sessions of this store."""
        return self._elapsed_before + time.perf_counter() - self._started

    @property
    def in_flight(self) -> list[Trial]:
        """Trials asked and not fully told."""
        out = []
        for trial_id in self.searcher.in_flight:
            state = self.searcher.trials[trial_id]
            out.append(Trial(trial_id, dict(state.config), state.target, state.told, state.pool_index))
        return out

    def history(self) -> pd.DataFrame:
        """One row per told epoch: ``q`` (epochs spent), ``trial``, ``epoch``, ``value``,
        ``best`` (best value so far), ``t`` (seconds of tuning), ``config_id`` (database id of
        a pool config, else -1), then every told metric."""
        frame = pd.DataFrame(self.told, columns=["q", "trial", "epoch", "value", "best", "t", "config_id", "metrics"])
        metrics = pd.DataFrame(list(frame.pop("metrics")), index=frame.index)
        return pd.concat([frame, metrics.drop(columns=[c for c in metrics.columns if c in frame.columns])], axis=1)

    def trial_dir(self, trial: Trial | int) -> Path:
        """``<store>/trials/t<id>``: a folder for the caller's checkpoints of this trial."""
        if self.store is None:
            raise ConfigurationError("this tuner has no store folder")
        trial_id = trial.trial_id if isinstance(trial, Trial) else int(trial)
        path = self.store / TRIALS_DIR / f"t{trial_id:06d}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Tuner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _checkpoint_path(self, trial_id: int) -> Path:
        if self.store is None:
            raise ConfigurationError("checkpoints need a store folder: Tuner(..., store=folder)")
        return self.store / TRIALS_DIR / f"t{trial_id:06d}" / "checkpoint.pt"

    def _save_checkpoint(self, trial_id: int, epoch: int, checkpoint: Mapping[str, Any], metrics: list[dict[str, float]]) -> None:
        """Atomically: temporary file, fsync, ``os.replace`` (a reader sees the old or the new one)."""
        import os
        import uuid

        import torch

        path = self._checkpoint_path(trial_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as handle:
                torch.save({"epoch": epoch, "state": dict(checkpoint), "metrics": metrics}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _tell_from_checkpoint(self, trial_id: int) -> None:
        """Tell the epochs a checkpoint holds beyond the log (a crash between the two writes)."""
        import torch

        if self.store is None or not self._checkpoint_path(trial_id).is_file():
            return
        saved = torch.load(self._checkpoint_path(trial_id), weights_only=True)
        state = self.searcher.trials[trial_id]
        for epoch in range(state.told + 1, min(int(saved["epoch"]), state.target) + 1):
            self.tell(trial_id, epoch, saved["metrics"][epoch - 1])

    def _internal(self, metrics: Mapping[str, Any] | float) -> Mapping[str, Any] | float:
        """What the method is told: the metric negated when minimising (others as given)."""
        if self._sign > 0:
            return metrics
        metric = self.problem.metric
        try:
            if isinstance(metrics, Mapping):
                return {**metrics, metric: -float(metrics[metric])} if metric in metrics else metrics
            return -float(metrics)
        except (TypeError, ValueError):
            return metrics  # objective_value says what is wrong

    def _external(self, metrics: Mapping[str, float]) -> dict[str, float]:
        metric = self.problem.metric
        return {k: (self._sign * v if k == metric else v) for k, v in metrics.items()}

    def _forecast_of(self, config: Mapping[str, Any]) -> dict[str, Any]:
        table = self.forecast()
        if table is None:
            return {"note": f"method {self.method_name!r} has no posterior over learning curves: no forecast"}
        index = pool_index_of(self.searcher, config)
        if index is None:
            return {"note": "the config is not in the method's pool: no forecast"}
        row = table.iloc[index]
        return {"mean": float(row["mean"]), "std": float(row["std"]), "epoch": self.problem.max_epochs}

    def _call(self, function, *args):
        """Run a method call on the method's own torch generator state."""
        from transfertune.core.device import call_on_own_generator

        return call_on_own_generator(self, function, *args)

    def _write(self, event: dict[str, Any]) -> None:
        if self._log is not None:
            if self._lock is None:
                raise StoreError(f"{self.store}: this tuner was closed")
            self._log.append(event)

    def _record(self, event: Mapping[str, Any]) -> None:
        state = self.searcher.trials[event["trial"]]
        value = self._sign * state.values[event["epoch"] - 1]
        best = (max if self._sign > 0 else min)(value, self.told[-1]["best"]) if self.told else value
        config_id = int(self.problem.history.config_ids[state.pool_index]) if state.pool_index is not None else -1
        self.told.append({"q": len(self.told) + 1, "trial": state.trial_id, "epoch": event["epoch"], "value": value, "best": best,
                          "t": event["t"], "config_id": config_id, "metrics": self._external(event["metrics"])})
        if self._bar is not None:
            self._bar.update(1)

    def _header(self) -> dict[str, Any]:
        problem = self.problem
        history = problem.history
        digest = hashlib.sha1()
        if history is not None:
            for array in (history.config_ids, history.X, history.train_grids, history.trial_length):
                digest.update(np.ascontiguousarray(array).tobytes())
            digest.update(json.dumps(list(history.train_tasks)).encode())
        return {
            "event": "start",
            "version": LOG_VERSION,
            "method": self.method_name,
            "method_options": json.loads(json.dumps(self.method_options, default=str)),
            "metric": problem.metric,
            "budget": problem.budget,
            "max_epochs": problem.max_epochs,
            "seed": problem.seed,
            "task": problem.task,
            "space": [dataclasses.asdict(h) for h in problem.space.hyperparameters],
            "history": digest.hexdigest() if history is not None else None,
            **({"direction": self.direction} if self.direction != "maximize" else {}),  # stores of before keep their header
        }

    def _check_header(self, logged: Mapping[str, Any], header: Mapping[str, Any]) -> None:
        if logged.get("event") != "start" or logged.get("version") != LOG_VERSION:
            raise StoreError(f"{self._log.path}: not an event log of this version (first line {dict(logged)})")
        normal = json.loads(json.dumps(header, default=str))
        different = [k for k in normal if k != "event" and logged.get(k) != normal[k]]
        if different:
            shown = "; ".join(f"{k}: store has {logged.get(k)!r}, now {normal[k]!r}" for k in different if k not in ("space", "history"))
            raise StoreError(
                f"{self.store} holds a run with other settings ({', '.join(different)}{'; ' + shown if shown else ''}); "
                "use another store folder or the same settings"
            )

    def _replay(self, events: list[dict[str, Any]]) -> None:
        for number, event in enumerate(events, start=2):
            kind = event.get("event")
            where = f"{self._log.path if self._log else 'events'} line {number}"
            if kind == "ask":
                trial = self._call(self.searcher.ask)
                asked = None if trial is None else trial.as_dict()
                if asked != event["trial"]:
                    raise StoreError(
                        f"{where}: replaying, method {self.method_name!r} asks {asked} where the log has {event['trial']}; "
                        "the method is not deterministic or its code changed; use a new store"
                    )
            elif kind == "observe":
                trial = self._call(register_trial, self.searcher, event["trial"]["config"], event["trial"]["epoch"])
                if trial is None or trial.as_dict() != event["trial"]:
                    raise StoreError(f"{where}: replaying, the observed config gives trial {trial} where the log has {event['trial']}; use a new store")
            elif kind == "tell":
                self._call(self.searcher.tell, event["trial"], event["epoch"], event["metrics"])
                self._record(event)
                self._elapsed_before = float(event["t"])
            elif kind == "fail":
                self._call(self.searcher.fail, event["trial"], event.get("reason", ""))
                self._elapsed_before = float(event["t"])
            else:
                raise StoreError(f"{where}: unknown event {event!r}")


class Recommendation(dict):
    """A recommended config (the dict itself, as before) with the method's forecast of its
    metric at the final epoch ``epoch``: ``mean`` and ``std`` (posterior standard deviation of
    the latent metric, observation noise excluded), or None and a ``note`` saying why."""

    def __init__(self, config: Mapping[str, Any], mean: float | None = None, std: float | None = None,
                 epoch: int | None = None, note: str = "") -> None:
        super().__init__(config)
        self.mean, self.std, self.epoch, self.note = mean, std, epoch, note

    @property
    def config(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        if self.mean is None:
            return f"{dict(self)!r} ({self.note})"
        return f"{dict(self)!r} (forecast at epoch {self.epoch}: {self.mean:.4g} ± {self.std:.2g})"


def posterior(searcher: Searcher) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)``, each ``(n_pool, E)``: the method's posterior over the test task's curves
    (higher-is-better orientation), or None when it keeps none. AT2 keeps one (its multi-task
    GP's posterior mean and standard deviation of f); no other registered method does."""
    from transfertune.methods.at2.method import AT2

    method = getattr(searcher, "method", None)
    if isinstance(method, AT2) and getattr(method, "mean", None) is not None:
        return np.asarray(method.mean), np.asarray(method.std)
    return None


def pool_index_of(searcher: Searcher, config: Mapping[str, Any]) -> int | None:
    """Row of ``config`` in a pool searcher's pool (same values, ``config_key``), else None."""
    from transfertune.history.records import config_key

    pool = getattr(searcher, "pool", None)
    if pool is None:
        return None
    keys = getattr(searcher, "_pool_keys", None)
    if keys is None:
        keys = {config_key(c): i for i, c in enumerate(pool.configs)}
        searcher._pool_keys = keys
    return keys.get(config_key(config))


def register_trial(searcher: Searcher, config: Mapping[str, Any], epochs: int) -> Trial | None:
    """Register a trial of ``config`` with ``epochs`` epochs to be told, as if the method had asked
    it (:meth:`Tuner.observe`). A pool method takes only a config of its pool (None otherwise)
    and one that has no trial yet; a space method any config of the space. Cut to the budget."""
    epochs = min(int(epochs), searcher.problem.max_epochs)
    if isinstance(searcher, PoolSearcher):
        index = pool_index_of(searcher, config)
        if index is None:
            return None
        if index in searcher._trial_of_row:
            raise ProtocolError(f"observe: config {dict(config)} already has trial {searcher._trial_of_row[index]}; observe a config once")
        epochs = min(epochs, int(searcher.pool.trial_length[index]))
        trial = searcher.new_trial(searcher.pool.configs[index], epochs, pool_index=index, validate=False)
        searcher._trial_of_row[index] = trial.trial_id
        searcher.method.in_flight.add(index)
        return trial
    return searcher.new_trial(config, epochs)
