"""Syne Tune 0.16's transfer methods as peers on the pool protocol (``pip install 'transfertune[peers]'``).

- ``syne_zero_shot``: ``ZeroShotTransfer`` (Wistuba, Schilling, Schmidt-Thieme 2015): its greedy
  portfolio in the order its ``get_config()`` returns it. In 0.16 the scheduler's ``suggest()``
  asks its default random searcher and never calls ``get_config()``, so through Syne Tune's own
  ``Tuner`` it is random search; the adapter calls ``get_config()``.
- ``syne_cts``: ``QuantileBasedSurrogateSearcher`` (Salinas, Shen, Perrone 2020, copula Thompson
  sampling) inside a ``SingleObjectiveScheduler``: an XGBoost surrogate of the training tasks'
  Gaussian-copula-normalised values at their last epoch; each ``suggest()`` draws one Thompson
  sample over 100,000 random candidates of the space. In 0.16 it ignores the test task's results
  (its ``_update`` does nothing), so it is a prior-only method.

RUSH (Zappella et al. 2021) is not in syne-tune 0.16.0: ``RUSHScheduler`` is listed in
``syne_tune.optimizer.schedulers.transfer_learning.__all__`` but defined nowhere, so importing it
fails; it has no adapter here.

How the methods see the problem: the config space is one categorical ``config`` over the pool's
row indices, and each training task's evaluations are its ``(n, 1 seed, E epochs, 1 objective)``
grid. Both schedulers are FIFO (``on_trial_result`` always answers CONTINUE), so each suggested
config is trained epoch by epoch to its end, every epoch reported to the scheduler, before the
next is asked for. The protocol allows no repeat and Syne Tune does not deduplicate: CTS's
Thompson samples fall on a few configs again and again (on the 12-config toy of the tests, once
three were trained, 1,000 more draws proposed none of the other nine), so a config trained to its end (or with no epoch
recorded) leaves CTS's candidate table: the rows of ``X_candidates``, ``mu_pred`` and
``sigma_pred``, the searcher's cached candidates and predictions. The portfolio never repeats.
``recommend()``: the best observed value.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
from abc import abstractmethod
from typing import Any

import numpy as np

from transfertune.errors import ConfigurationError, MissingDependencyError
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.registry import register

SYNE_TUNE_VERSION = "0.16"
METRIC = "y"


def _require_syne_tune(name: str) -> None:
    """A one-line ConfigurationError unless Syne Tune 0.16 and its transfer modules import."""
    try:
        import syne_tune
        from syne_tune.optimizer.schedulers.transfer_learning.quantile_based.quantile_based_searcher import (  # noqa: F401
            QuantileBasedSurrogateSearcher,
        )
        from syne_tune.optimizer.schedulers.transfer_learning.zero_shot import ZeroShotTransfer  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"{name} needs Syne Tune {SYNE_TUNE_VERSION} (pip install 'transfertune[peers]'): {exc}") from None
    if not syne_tune.__version__.startswith(SYNE_TUNE_VERSION + "."):
        raise ConfigurationError(f"{name} is written for Syne Tune {SYNE_TUNE_VERSION}, found {syne_tune.__version__}")


@contextlib.contextmanager
def _quiet():
    """Syne Tune prints fit timings and logs a warning per scheduler: keep episodes' output clean."""
    logger = logging.getLogger("syne_tune")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def task_evaluations(problem: TransferProblem, grids: np.ndarray) -> tuple[dict, dict[str, Any]]:
    """Syne Tune's config space (``config``: categorical over row indices) and its
    ``TransferLearningTaskEvaluations`` per training task from ``grids`` ``(T, n, E)``."""
    import pandas as pd
    from syne_tune.config_space import choice
    from syne_tune.optimizer.schedulers.transfer_learning.transfer_learning_task_evaluation import TransferLearningTaskEvaluations

    space = {"config": choice(list(range(problem.n_configs)))}
    hyperparameters = pd.DataFrame({"config": np.arange(problem.n_configs)})
    evaluations = {
        task: TransferLearningTaskEvaluations(space, hyperparameters.copy(), [METRIC], grid[:, None, :, None])
        for task, grid in zip(problem.train_tasks, grids)
    }
    return space, evaluations


class _SyneTunePeer(Method):
    """Trains Syne Tune's suggestions one after another, each to its end (FIFO)."""

    def __init__(self) -> None:
        _require_syne_tune(self.name)

    @abstractmethod
    def make_scheduler(self, problem: TransferProblem) -> Any:
        """The Syne Tune scheduler, built from the training tasks."""

    @abstractmethod
    def suggest(self) -> int | None:
        """Row index of the scheduler's next config (None: it has none left)."""

    def retire(self, config: int) -> None:
        """``config`` has no epoch left: keep it from being suggested again (default: nothing)."""

    def fit(self, problem: TransferProblem) -> None:
        from threadpoolctl import threadpool_limits

        with _quiet(), threadpool_limits(limits=1):  # XGBoost's OpenMP: one thread per episode process
            self.scheduler = self.make_scheduler(problem)
        for config in np.flatnonzero(problem.trial_length == 0):
            self.retire(int(config))
        self.trial = None
        self.suggested: list[int] = []

    def ask(self) -> int:
        if self.trial is not None and self.can_continue(self.trial.config["config"]):
            return self.trial.config["config"]
        from syne_tune.backend.trial_status import Trial

        with _quiet():
            config = self.suggest()
        if config is None or not self.can_continue(config):
            raise RuntimeError(f"{self.name}: Syne Tune suggested {config}, which has no epoch left")
        self.suggested.append(config)
        self.trial = Trial(trial_id=len(self.suggested) - 1, config={"config": config}, creation_time=datetime.datetime.now())
        return config

    def tell(self, config_index: int, epoch: int, value: float) -> None:
        super().tell(config_index, epoch, value)
        result = {METRIC: float(value), "epoch": epoch}
        with _quiet():
            self.scheduler.on_trial_result(self.trial, result)
            if not self.can_continue(config_index):
                self.scheduler.on_trial_complete(self.trial, result)
                self.retire(config_index)


@register("syne_zero_shot")
class SyneZeroShot(_SyneTunePeer):
    """Syne Tune's ``ZeroShotTransfer`` portfolio, each config trained to its end in portfolio order."""

    def make_scheduler(self, problem: TransferProblem) -> Any:
        from syne_tune.optimizer.schedulers.transfer_learning.zero_shot import ZeroShotTransfer

        grids = np.where(np.isfinite(problem.train_grids), problem.train_grids, -np.inf)  # unrecorded: never the best
        space, evaluations = task_evaluations(problem, grids)
        return ZeroShotTransfer(space, METRIC, evaluations, do_minimize=False, random_seed=problem.seed)

    def suggest(self) -> int | None:
        config = self.scheduler.get_config()
        return None if config is None else int(config["config"])


@register("syne_cts")
class SyneCTS(_SyneTunePeer):
    """Syne Tune's quantile-based CTS searcher in a FIFO scheduler, each suggestion trained to its end."""

    def make_scheduler(self, problem: TransferProblem) -> Any:
        from syne_tune.optimizer.schedulers.single_objective_scheduler import SingleObjectiveScheduler
        from syne_tune.optimizer.schedulers.transfer_learning.quantile_based.quantile_based_searcher import QuantileBasedSurrogateSearcher

        last = problem.train_grids[:, :, -1]
        if not np.isfinite(last).all():
            task = problem.train_tasks[int(np.flatnonzero(~np.isfinite(last).all(axis=1))[0])]
            raise ConfigurationError(f"syne_cts uses every training config's value at the last epoch (as Syne Tune's CTS does); task {task!r} lacks some")
        # the searcher takes the argmin of its samples: hand it the negated metric
        space, evaluations = task_evaluations(problem, -problem.train_grids)
        searcher = QuantileBasedSurrogateSearcher(space, evaluations, random_seed=problem.seed)
        return SingleObjectiveScheduler(space, METRIC, do_minimize=False, searcher=searcher, random_seed=problem.seed)

    def suggest(self) -> int | None:
        suggestion = self.scheduler.suggest()
        return None if suggestion is None else int(suggestion.config["config"])

    def retire(self, config: int) -> None:
        searcher = self.scheduler.searcher
        keep = searcher.X_candidates["config"].to_numpy() != config
        # suggest() indexes X_candidates by the position of the smallest sample: keep it positional
        searcher.X_candidates = searcher.X_candidates[keep].reset_index(drop=True)
        searcher.mu_pred, searcher.sigma_pred = searcher.mu_pred[keep], searcher.sigma_pred[keep]
