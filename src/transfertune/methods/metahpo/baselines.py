"""The baselines of Meta-HPO's Table 1, each under a wall-clock budget on the full data set.

* random search: :class:`~transfertune.methods.random_space.RandomSpaceSearch` (``random_space``);
* GP Bayesian optimisation: :class:`GPBOSpaceSearch` (``gp_bo_space``), a BoTorch GP with
  log noisy expected improvement over the continuous space;
* a subset-size multi-fidelity method: :func:`hyperband_subset_size`, Hyperband whose resource is
  the share of the training set a config is trained on (Li et al. 2017's "data set subsampling"
  variant; a Fabolas-like resource without Fabolas' entropy search);
* "Meta-HPO w/ RS" is :func:`~transfertune.methods.metahpo.method.run_metahpo` with random subsets.

The two protocol searchers run under :func:`run_timed_search`: up to ``pool.workers`` trials in
flight; no new trial after the deadline, and a trial in flight stops after the epoch in which the
deadline passes (told as far as it got, then failed with the reason "deadline").
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from transfertune.core.objectives import BudgetExhausted
from transfertune.core.spaces import SearchSpace
from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError
from transfertune.methods.baselines.hyperband import hyperband_brackets
from transfertune.methods.metahpo.execution import EpochsResult, WorkerPool, train_epochs
from transfertune.methods.protocol import FAILED, SearchProblem, Searcher, SpaceSearcher
from transfertune.methods.random_space import RandomSpaceSearch
from transfertune.methods.registry import register
from transfertune.training.runner import TrainSettings
from transfertune.training.trainer import TaskData


class _InitialConfigs:
    """Mixin: ask the ``initial_configs`` first (warm start from earlier incumbents), then the
    method's own proposals."""

    def _initial(self) -> Trial | None:
        if self._queue:
            return self.new_trial(self._queue.pop(0), self.trial_epochs)
        return None


@register("random_space_warm")
class RandomSpaceWarmStart(_InitialConfigs, RandomSpaceSearch):
    """Random search whose first trials are ``initial_configs`` (the out-of-sample scenario's
    baselines start from the previous incumbent, section 4.1)."""

    def __init__(self, epochs: int | None = None, initial_configs: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(epochs)
        self.initial_configs = [dict(c) for c in initial_configs]

    def fit(self, problem: SearchProblem) -> None:
        super().fit(problem)
        self._queue = list(self.initial_configs)

    def ask(self) -> Trial:
        return self._initial() or super().ask()


@register("gp_bo_space")
class GPBOSpaceSearch(_InitialConfigs, SpaceSearcher):
    """GP Bayesian optimisation over the continuous search space, one full-length trial per config.

    Surrogate: BoTorch ``SingleTaskGP`` (ARD kernel, standardised outcome; fitted by marginal
    likelihood, :func:`transfertune.methods.baselines.gp.fit_gp`) on the unit-cube encoding of
    every finished trial (its value at the last epoch). Acquisition: ``qLogNoisyExpectedImprovement``
    with the configs of the trials in flight as ``X_pending`` (so parallel workers get different
    proposals), maximised over ``[0, 1]^d`` by ``optimize_acqf``; integers and categoricals are
    rounded by :meth:`SearchSpace.decode`. A diverged trial counts with the worst value seen.
    The first ``n_initial`` configs (after ``initial_configs``) are random.

    Args:
        epochs: epochs per trial (None: the maximal fidelity E).
        n_initial: random configs before the GP.
        initial_configs: configs asked first (warm start).
        raw_samples, num_restarts: ``optimize_acqf``'s settings.
    """

    def __init__(self, epochs: int | None = None, n_initial: int = 3, initial_configs: Sequence[Mapping[str, Any]] = (), raw_samples: int = 256,
                 num_restarts: int = 4) -> None:
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ConfigurationError(f"gp_bo_space epochs must be a positive integer or null, got {epochs!r}")
        if isinstance(n_initial, bool) or int(n_initial) != n_initial or n_initial < 1:
            raise ConfigurationError(f"gp_bo_space n_initial must be a positive integer, got {n_initial!r}")
        self.epochs, self.n_initial = epochs, int(n_initial)
        self.initial_configs = [dict(c) for c in initial_configs]
        self.raw_samples, self.num_restarts = int(raw_samples), int(num_restarts)

    def fit(self, problem: SearchProblem) -> None:
        self.trial_epochs = min(self.epochs or problem.max_epochs, problem.max_epochs)
        self._queue = list(self.initial_configs)
        self._random_left = self.n_initial

    def finished(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n, d)`` unit-cube configs of the trials that finished or failed, ``(n,)`` values
        (last told value; failed trials: the worst value seen)."""
        configs, values, failed = [], [], []
        for state in self.trials.values():
            if state.in_flight:
                continue
            if state.status == FAILED:
                failed.append(state.config)
            elif state.values:
                configs.append(state.config)
                values.append(state.values[-1])
        if failed and values:
            configs += failed
            values += [min(values)] * len(failed)
        X = self.to_unit(configs) if configs else np.zeros((0, self.problem.space.dim))
        return X, np.asarray(values, dtype=np.float64)

    def ask(self) -> Trial:
        initial = self._initial()
        if initial is not None:
            return initial
        X, y = self.finished()
        if self._random_left > 0 or len(y) < 2 or np.ptp(y) == 0:
            self._random_left -= 1
            return self.new_trial(self.sample_configs(1)[0], self.trial_epochs)
        return self.new_trial(self.propose(X, y), self.trial_epochs)

    def propose(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.optim import optimize_acqf

        from transfertune.methods.baselines.gp import fit_gp

        pending = [self.trials[t].config for t in self.in_flight]
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")  # BoTorch's numerical warnings on tiny data sets
            torch.manual_seed(int(self.rng.integers(2**31 - 1)))
            model = fit_gp(X, y)
            X_pending = torch.as_tensor(self.to_unit(pending), dtype=torch.float64) if pending else None
            acqf = qLogNoisyExpectedImprovement(model, X_baseline=torch.as_tensor(X, dtype=torch.float64), X_pending=X_pending)
            bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).double()
            candidate, _ = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=self.num_restarts, raw_samples=self.raw_samples)
        return self.from_unit(candidate.detach().numpy())[0]

    def recommend(self) -> dict[str, Any] | None:
        """The finished trial with the best last value (a trial cut by the deadline is not finished)."""
        best, best_value = None, -np.inf
        for state in self.trials.values():
            if state.status != FAILED and not state.in_flight and state.values and state.values[-1] > best_value:
                best, best_value = state, state.values[-1]
        return dict(best.config) if best is not None else super().recommend()


@dataclass
class SearchOutcome:
    """A baseline's run under a wall-clock budget.

    Attributes:
        method: its label.
        config: the recommended config (None when nothing finished).
        seconds: wall clock from the first ask to the last result.
        trials: one row per trial: ``trial, config (JSON), epochs, status, value, t`` (seconds
            since the start when its result came back), and ``fraction`` (subset size) where used.
    """

    method: str
    config: dict[str, Any] | None
    seconds: float
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_timed_search(
    label: str,
    searcher: Searcher,
    space: SearchSpace,
    task_ref: Any,
    settings: TrainSettings,
    pool: WorkerPool,
    budget_seconds: float,
    metric: str,
    seed: int = 0,
    train_seed: int = 0,
) -> SearchOutcome:
    """Run a protocol searcher against live training of ``task_ref`` (a task, or its pool
    handle) for ``budget_seconds`` of wall clock (see the module docstring)."""
    import json

    if not budget_seconds > 0:
        raise ConfigurationError(f"the wall-clock budget must be positive, got {budget_seconds!r}")
    problem = SearchProblem(space=space, max_epochs=int(settings.epochs), budget=10**9, seed=int(seed), task=label, metric=metric)
    searcher.setup(problem)
    start = time.time()
    deadline = start + float(budget_seconds)
    running: dict[Any, Trial] = {}
    rows = []
    exhausted = False
    while True:
        while not exhausted and len(running) < pool.workers and time.time() < deadline:
            try:
                trial = searcher.ask()
            except BudgetExhausted:
                exhausted = True
                break
            if trial is None:
                break
            if trial.start_epoch:
                raise ConfigurationError(f"{label}: trials that continue ({trial}) are not supported here")
            future = pool.submit(train_epochs, task_ref, settings, trial.config, trial.epoch, train_seed, deadline)
            running[future] = trial
        if not running:
            break
        for future in pool.wait_first(running):
            trial = running.pop(future)
            result: EpochsResult = future.result()
            for record in result.records:
                searcher.tell(trial, int(record["epoch"]), {k: v for k, v in record.items() if k != "epoch"})
            if result.status != "completed":
                searcher.fail(trial, result.reason)
            rows.append({"trial": trial.trial_id, "config": json.dumps(dict(trial.config), sort_keys=True), "epochs": len(result.records),
                         "status": result.status, "value": result.records[-1][metric] if result.records else np.nan, "t": time.time() - start})
    return SearchOutcome(label, searcher.recommend(), time.time() - start, pd.DataFrame(rows))


def hyperband_subset_size(
    task: TaskData,
    task_ref: Any,
    space: SearchSpace,
    settings: TrainSettings,
    pool: WorkerPool,
    budget_seconds: float,
    metric: str,
    max_units: int = 27,
    eta: int = 3,
    seed: int = 0,
    train_seed: int = 0,
) -> SearchOutcome:
    """Hyperband over the training-set size (see the module docstring).

    A rung of budget ``b`` (in ``1 .. max_units``, :func:`hyperband_brackets` with ``eta``) trains
    each of its configs for ``settings.epochs`` epochs on a uniform random ``b / max_units`` of the
    training rows (one draw per rung, shared by its configs) and scores it on the whole validation
    part; the best ``1 / eta`` go on to the next, larger share. Brackets repeat until the deadline.
    The recommendation is the best config at the largest share any config reached.
    """
    import json

    if not budget_seconds > 0:
        raise ConfigurationError(f"the wall-clock budget must be positive, got {budget_seconds!r}")
    brackets = hyperband_brackets(int(max_units), int(eta), 1)
    rng = np.random.default_rng(seed)
    start = time.time()
    deadline = start + float(budget_seconds)
    n_train = len(task.X_train)
    rows: list[dict[str, Any]] = []
    best: dict[int, tuple[float, dict[str, Any]]] = {}  # budget -> (value, config)
    bracket = 0
    while time.time() < deadline:
        rungs = brackets[bracket % len(brackets)]
        configs = space.sample(rungs[0].size, seed=int(rng.integers(2**31 - 1)))
        for level, rung in enumerate(rungs):
            if time.time() >= deadline or not configs:
                break
            share = rung.budget / max_units
            rows_idx = np.sort(rng.choice(n_train, size=max(2, math.ceil(share * n_train)), replace=False))
            values = []
            futures: dict[Any, int] = {}
            queue = list(range(len(configs)))
            results: dict[int, EpochsResult] = {}
            while queue or futures:
                while queue and len(futures) < pool.workers and time.time() < deadline:
                    i = queue.pop(0)
                    futures[pool.submit(train_epochs, task_ref, settings, configs[i], settings.epochs, train_seed, deadline, rows_idx)] = i
                if not futures:
                    break
                for future in pool.wait_first(futures):
                    i = futures.pop(future)
                    results[i] = future.result()
            for i, config in enumerate(configs):
                result = results.get(i)
                finished = result is not None and result.status == "completed"
                value = result.records[-1][metric] if finished else -np.inf
                values.append(value)
                if result is not None:
                    rows.append({"trial": len(rows), "config": json.dumps(config, sort_keys=True), "epochs": len(result.records), "status": result.status,
                                 "value": result.records[-1][metric] if result.records else np.nan, "t": time.time() - start, "fraction": share,
                                 "bracket": bracket})
                if finished and value > best.get(rung.budget, (-np.inf, None))[0]:
                    best[rung.budget] = (value, config)
            keep = [configs[i] for i in np.argsort(-np.asarray(values), kind="stable") if np.isfinite(values[i])]
            configs = keep[: rungs[level + 1].size] if level + 1 < len(rungs) else []
        bracket += 1
    config = best[max(best)][1] if best else None
    return SearchOutcome("hyperband_subset_size", config, time.time() - start, pd.DataFrame(rows))
