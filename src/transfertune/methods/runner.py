"""Run methods on a recorded catalog: one episode, or a whole benchmark in parallel.

An episode is one (method, pair, repetition): build the :class:`TransferProblem` from the
catalog's training tasks, fit the method, then ask/evaluate/tell/recommend rounds of the trial
protocol (:mod:`transfertune.methods.protocol`) against the test task's
:class:`TabularObjective` until Q epochs are spent. The result is one row per epoch (query).
A pool method runs through a :class:`PoolSearcher`; a method that proposes configs of the
space has its configs snapped to the nearest recorded one (the episode parameter
``off_pool``, default ``nearest``; ``refuse`` stops the episode instead), and its rows get a
``snap_distance`` column (0 for a recorded config).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from transfertune.core.catalog import ObservationCatalog, TaskPair
from transfertune.core.device import torch_threads
from transfertune.core.metrics import config_ranks, simple_regret
from transfertune.core.objectives import BudgetExhausted, TabularObjective
from transfertune.errors import ConfigurationError
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.protocol import PoolSearcher, SearchProblem, Searcher
from transfertune.methods.registry import make_searcher

RESULT_COLUMNS = [
    "method", "pair", "repetition", "seed", "q", "config_id", "epoch", "value", "regret",
    "recommended_config_id", "rank", "wall_time_s",
]


@dataclass
class Episode:
    """Everything one worker needs: no catalog, only arrays (cheap to send to a process)."""

    label: str
    params: dict[str, Any]
    problem: TransferProblem
    test_grid: np.ndarray
    pair: str
    repetition: int


def make_problem(catalog: ObservationCatalog, pair: TaskPair, budget: int, seed: int, data_seed: int = 0) -> tuple[TransferProblem, np.ndarray]:
    """The problem a method sees and the test grid only the objective sees."""
    test_grid = catalog.grid(pair.test, data_seed)
    objective = TabularObjective(test_grid, budget=budget)
    problem = TransferProblem(
        config_ids=catalog.config_ids.copy(),
        configs=[catalog.configs[int(c)] for c in catalog.config_ids],
        X=catalog.encoded_configs.copy(),
        space=catalog.space,
        n_epochs=catalog.max_epoch,
        train_tasks=pair.train,
        train_grids=catalog.grids(pair.train, data_seed),
        test_task=pair.test,
        trial_length=objective.trial_length.copy(),
        budget=budget,
        seed=seed,
    )
    return problem, test_grid


def run_episode(
    episode: Episode,
    progress: Callable[[int], None] | None = None,
    observe: Callable[[int, Method | Searcher], None] | None = None,
) -> pd.DataFrame:
    """Run one method on one pair for Q queries; one row per query (see ``RESULT_COLUMNS``).

    ``observe(q, method)``, if given, sees the method after its offline fit (q = 0) and after
    each query's tell and recommendation (in this process: for traces of a method's state); a
    pool method is passed itself, not its :class:`PoolSearcher`.
    """
    import torch

    torch.manual_seed(episode.problem.seed)
    problem = episode.problem
    params = dict(episode.params)
    objective = TabularObjective(
        episode.test_grid, budget=problem.budget, configs=problem.configs, space=problem.space, off_pool=params.get("off_pool", "nearest")
    )
    ranks = config_ranks(episode.test_grid)
    searcher = make_searcher(episode.label, params)
    pool = isinstance(searcher, PoolSearcher)
    start = time.perf_counter()
    searcher.setup(SearchProblem.from_transfer(problem))
    shown = searcher.method if pool else searcher
    if observe is not None:
        observe(0, shown)
    rows, snapped = [], []
    q = 0
    while q < problem.budget:
        try:
            trial = searcher.ask()
        except BudgetExhausted:  # whole-trial searchers stop when no full trial fits (e.g. 1 epoch of 4 left)
            break
        if trial is None:
            raise RuntimeError(f"method {episode.label!r} asked for nothing while no trial was in flight")
        for epoch, value in objective.evaluate(trial):
            searcher.tell(trial, epoch, value)
            q += 1
            recommended = searcher.recommend_index() if pool else objective.locate(searcher.recommend())[0]
            rows.append((q, int(problem.config_ids[objective.trial_row(trial.trial_id)]), epoch, value,
                         int(problem.config_ids[recommended]), int(ranks[recommended]), time.perf_counter() - start))
            if not pool:
                snapped.append(objective.snap_distance(trial.trial_id))
            if observe is not None:
                observe(q, shown)
            if progress is not None:
                progress(1)
    frame = pd.DataFrame(rows, columns=["q", "config_id", "epoch", "value", "recommended_config_id", "rank", "wall_time_s"])
    frame["regret"] = simple_regret(frame["value"], objective.optimum)
    frame["method"] = episode.label
    frame["pair"] = episode.pair
    frame["repetition"] = episode.repetition
    frame["seed"] = problem.seed
    if pool:
        return frame[RESULT_COLUMNS]
    frame["snap_distance"] = snapped
    return frame[[*RESULT_COLUMNS, "snap_distance"]]


FAILURE_COLUMNS = ["method", "pair", "repetition", "seed", "error"]


def error_line(exc: BaseException) -> str:
    """``Type: message`` on one line (the message's first line)."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def failure_record(episode: Episode, exc: BaseException) -> dict[str, Any]:
    """One row of the failures table (``FAILURE_COLUMNS``) for an episode that raised ``exc``."""
    return {"method": episode.label, "pair": episode.pair, "repetition": episode.repetition, "seed": episode.problem.seed, "error": error_line(exc)}


def _run_in_worker(episode: Episode, keep_going: bool = False) -> pd.DataFrame | dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one episode per core; avoid oversubscription
    if not keep_going:
        return run_episode(episode)
    try:
        return run_episode(episode)
    except Exception as exc:  # recorded by the parent; the other episodes run on
        return failure_record(episode, exc)


def resolve_pairs(catalog: ObservationCatalog, pairs: str | Sequence[str] | None) -> list[TaskPair]:
    """``"all"``/None: every pair of the catalog; else test-task names of the catalog's pairs."""
    if pairs in (None, "all"):
        return list(catalog.pairs)
    names = [pairs] if isinstance(pairs, str) else list(pairs)
    known = {p.name for p in catalog.pairs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigurationError(f"unknown pair(s) {unknown}; the catalog's pairs (by test task) are {sorted(known)}")
    return [catalog.pair(n) for n in names]


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or a ConfigurationError if it is not a positive whole number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}") from None
    if number <= 0 or number != value:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    return number


def build_episodes(
    catalog: ObservationCatalog,
    methods: Mapping[str, Mapping[str, Any] | None],
    pairs: Sequence[TaskPair],
    repetitions: int,
    budget: int,
    seed: int,
    data_seed: int = 0,
) -> list[Episode]:
    budget = positive_int(budget, "budget")
    repetitions = positive_int(repetitions, "repetitions")
    if not methods:
        raise ConfigurationError("no methods configured")
    for label, params in methods.items():  # fail fast on unknown names and bad keywords
        make_searcher(label, dict(params or {}))
    episodes = []
    for pair_index, pair in enumerate(pairs):
        for repetition in range(repetitions):
            # distinct seeds per pair too, so random draws are not shared across pairs
            problem, test_grid = make_problem(catalog, pair, budget, seed + 1000 * pair_index + repetition, data_seed)
            capacity = int(problem.trial_length.sum())
            if budget > capacity:
                raise ConfigurationError(f"budget {budget} exceeds the {capacity} epochs recorded for test task {pair.test!r}")
            for label, params in methods.items():
                episodes.append(Episode(label, dict(params or {}), problem, test_grid, pair.name, repetition))
    return episodes


class _EpisodeLines:
    """Progress when stderr is not a terminal: one line per finished episode instead of tqdm,
    whose carriage-return updates become a single line of thousands of characters in a log."""

    def __init__(self, total_episodes: int) -> None:
        self.total, self.done, self.start = total_episodes, 0, time.perf_counter()

    def finished(self, episode: Episode, failed: bool = False) -> None:
        import sys

        self.done += 1
        state = "failed" if failed else "done"
        print(f"episode {self.done}/{self.total} {state}: {episode.label} / {episode.pair} / rep {episode.repetition} "
              f"({time.perf_counter() - self.start:.0f} s)", file=sys.stderr, flush=True)


def run_episodes(
    episodes: Sequence[Episode], n_jobs: int = 1, show_progress: bool = True, failures: list[dict[str, Any]] | None = None
) -> pd.DataFrame:
    """Run episodes, in parallel processes when ``n_jobs != 1`` (-1: one per core).

    ``failures``: None: an episode that raises stops the run (its exception propagates); a list:
    such an episode is recorded there (a row of ``FAILURE_COLUMNS``: method, pair, repetition,
    seed, ``Type: message``) and the other episodes run on, so the result holds every row but
    theirs (an empty frame with the result columns if all failed).

    Progress: a tqdm bar of queries when stderr is a terminal, else one line per episode.
    Interrupted (Ctrl-C, SIGTERM), the worker processes are stopped and queued episodes dropped
    before the interruption propagates (a pool left to finish would run the whole benchmark).
    """
    import sys

    from tqdm.auto import tqdm

    if n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    keep_going = failures is not None
    total = sum(e.problem.budget for e in episodes)
    terminal = sys.stderr.isatty()
    lines = _EpisodeLines(len(episodes)) if show_progress and not terminal else None
    results: list[pd.DataFrame] = []

    def collect(episode: Episode, outcome: pd.DataFrame | dict[str, Any]) -> None:
        if isinstance(outcome, dict):
            failures.append(outcome)
        else:
            results.append(outcome)
        if lines is not None:
            lines.finished(episode, failed=isinstance(outcome, dict))

    with tqdm(total=total, desc="queries", unit="q", disable=not (show_progress and terminal)) as bar:
        if n_jobs == 1 or len(episodes) == 1:
            # one thread, as in the workers: the models' tensors are small, and on a loaded 2-core
            # machine two threads made an AT2 episode 54x slower (30 queries: 169 s against 3.1 s)
            with torch_threads(1):
                for episode in episodes:
                    bar.set_postfix_str(f"{episode.label} / {episode.pair} / rep {episode.repetition}")
                    try:
                        outcome = run_episode(episode, progress=bar.update)
                    except Exception as exc:
                        if not keep_going:
                            raise
                        outcome = failure_record(episode, exc)
                    collect(episode, outcome)
        else:
            for i, outcome in in_processes(_run_in_worker, [(e, keep_going) for e in episodes], n_jobs):
                collect(episodes[i], outcome)
                bar.update(episodes[i].problem.budget)
    if not results:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    frame = pd.concat(results, ignore_index=True)
    order = {label: i for i, label in enumerate(dict.fromkeys(e.label for e in episodes))}
    frame["_order"] = frame["method"].map(order)
    return frame.sort_values(["_order", "pair", "repetition", "q"]).drop(columns="_order").reset_index(drop=True)


def in_processes(function: Callable[..., Any], calls: Sequence[tuple], n_jobs: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()) -> Any:
    """``function(*calls[i])`` in ``n_jobs`` spawned worker processes; yields ``(i, result)`` as
    each finishes. ``initializer(*initargs)`` runs once per worker (state sent once, not per call).
    Interrupted or failed, the queued calls are dropped and the running ones ended
    (:func:`stop_pool`) before the exception propagates."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: safe with torch and with threads the parent already started
    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"), initializer=initializer, initargs=initargs)
    try:
        futures = {pool.submit(function, *args): i for i, args in enumerate(calls)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def stop_pool(pool) -> None:
    """Drop the queued episodes and end the running ones (``shutdown`` alone waits for every
    running episode to finish)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
