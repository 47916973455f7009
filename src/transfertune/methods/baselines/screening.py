"""Practitioner baselines: screen a few transferred configs for a few epochs, continue the best.

Each method ranks the configs from the training tasks' curves, takes a short list of
candidates, and runs successive halving (Jamieson & Talwalkar 2016; one bracket of Li et al.'s
Hyperband) on them with the epoch as resource:

- rung i trains every member to ``screen_epochs * eta**i`` epochs (capped at E), config by
  config in list order, each epoch by epoch (a promoted config resumes from its epochs);
- when every member reached it, the best ``max(1, floor(m / eta))`` of the m members by their
  value at that epoch go on (ties: the earlier one in the list);
- the last member (the survivor) is trained to its end; then the configs dropped at the last
  rung (best value first), then those dropped at the rung before, ..., each continued to its
  end; then the method's remaining order, each config trained to its end.

The methods differ only in the candidates:

- ``transfer_screening``: the top ``k`` of the zero-shot order (mean rank over the training
  tasks of each config's best value over epochs; the same order and tie-break as ``zero_shot``).
- ``per_task_screening``: each training task's own top ``k`` configs (default 1: its best),
  deduplicated, in zero-shot order.
- ``portfolio_zero_shot``: the first ``k`` configs of Wistuba, Schilling, Schmidt-Thieme's (2015)
  greedy portfolio (:func:`greedy_portfolio`), as Syne Tune's ``ZeroShotTransfer`` builds it.
  ``k = 1`` trains the portfolio in order, each config to its end (Syne Tune's FIFO use).

``recommend()``: the config with the best value observed so far; before any observation, the
first candidate.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
from scipy.stats import rankdata

from transfertune.core.metrics import config_ranks
from transfertune.errors import ConfigurationError
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.registry import register


def best_over_epochs(train_grids: np.ndarray) -> np.ndarray:
    """``(T, n)`` each training task's best value over epochs per config (-inf: none recorded)."""
    return np.max(np.where(np.isfinite(train_grids), train_grids, -np.inf), axis=2)


def mean_rank_order(train_grids: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """``(n,)`` configs by their mean rank over the training tasks (``zero_shot``'s order).

    The rank of config c on task t is the number of configs with a strictly better best value
    over epochs (:func:`config_ranks`); equal means are ordered by ``tiebreak`` (lower first).
    """
    mean_rank = np.stack([config_ranks(grid) for grid in train_grids]).mean(axis=0)
    return np.lexsort((tiebreak, mean_rank))


def greedy_portfolio(best: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Wistuba, Schilling, Schmidt-Thieme (2015)'s greedy portfolio of all n configs, in order.

    With ``r_tc`` the rank (1 = best, ties averaged) of config c on task t among the configs of
    the current round, and P the configs picked in this round, the next pick is::

        argmin_c  sum_t  min(min_{p in P} r_tp, r_tc)

    the config that most lowers the average over tasks of the best rank in the portfolio, so a
    task the first picks serve badly gets its own good config. When every task's best-ranked
    config of the round is in P (no pick can lower the score any more), the round ends and the
    greedy starts again on the configs not yet picked, ranked among themselves (Syne Tune's
    ``ZeroShotTransfer`` resets its ranks there in the same way).

    Args:
        best: ``(T, n)`` best value over epochs per task and config, higher is better.
        priority: ``(n,)`` tie-break between equal scores, lower first.
    Returns:
        ``(n,)`` config indices in portfolio order.
    """
    n_tasks = best.shape[0]
    picked: list[int] = []
    remaining = np.arange(best.shape[1])
    while len(remaining):
        ranks = rankdata(-best[:, remaining], method="average", axis=1)  # (T, m), 1 = best
        floor = ranks.min(axis=1)
        covered = np.full(n_tasks, np.inf)  # best rank in this round's portfolio, per task
        open_ = np.ones(len(remaining), dtype=bool)
        while open_.any():
            # sums of ranks (halves at worst) are exact in floating point: ties compare equal
            score = np.where(open_, np.minimum(ranks, covered[:, None]).sum(axis=0), np.inf)
            tied = np.flatnonzero(score == score.min())
            pick = int(tied[np.argmin(priority[remaining[tied]])])
            picked.append(int(remaining[pick]))
            open_[pick] = False
            covered = np.minimum(covered, ranks[:, pick])
            if np.all(covered <= floor):
                break
        remaining = remaining[open_]
    return np.asarray(picked, dtype=np.int64)


def _integer(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)) or not float(value).is_integer() or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _Screening(Method):
    """Successive halving over ``self.candidates``, then continuation (module docstring).

    Subclasses implement :meth:`rank_configs`. ``history`` records every rung as
    ``(rung, epochs, members)``; ``eliminated`` the configs dropped at each halving, best first.
    """

    def __init__(self, k: int = 3, screen_epochs: int = 5, eta: int = 3) -> None:
        self.k = _integer(k, "k")
        self.screen_epochs = _integer(screen_epochs, "screen_epochs")
        self.eta = _integer(eta, "eta", minimum=2)

    @abstractmethod
    def rank_configs(self, problem: TransferProblem) -> tuple[np.ndarray, np.ndarray]:
        """``(candidates, order)``: the configs to screen, in list order, and all n configs in
        the order to continue them once the screened ones are trained to their ends."""

    def fit(self, problem: TransferProblem) -> None:
        candidates, self.order = self.rank_configs(problem)
        self.candidates = [int(c) for c in candidates if problem.trial_length[c] > 0]
        self.members = list(self.candidates)
        self.rung = 0
        self.history: list[tuple[int, int, list[int]]] = []
        self.eliminated: list[list[int]] = []
        if len(self.members) > 1:
            self.history.append((0, self.rung_epochs(0), list(self.members)))

    def rung_epochs(self, rung: int) -> int:
        return min(self.screen_epochs * self.eta**rung, self.problem.n_epochs)

    def continuation(self) -> list[int]:
        """Survivor, then the dropped configs (latest rung first, best first), then the order."""
        screened = self.members + [c for dropped in reversed(self.eliminated) for c in dropped]
        seen = set(screened)
        return screened + [int(c) for c in self.order if int(c) not in seen]

    def ask(self) -> int:
        while len(self.members) > 1:
            epochs = self.rung_epochs(self.rung)
            for config in self.members:
                if self.trained_epochs(config) < min(epochs, self.problem.trial_length[config]):
                    return config
            # a member's latest value is its value at the rung's epoch (or at its record's end)
            values = np.array([self.curves[c][-1] for c in self.members])
            ranked = [self.members[i] for i in np.argsort(-values, kind="stable")]
            keep = max(1, len(ranked) // self.eta)
            self.members, dropped = ranked[:keep], ranked[keep:]
            self.eliminated.append(dropped)
            self.rung += 1
            if len(self.members) > 1:
                self.history.append((self.rung, self.rung_epochs(self.rung), list(self.members)))
        for config in self.continuation():
            if self.can_continue(config):
                return config
        raise RuntimeError("every config has been trained to its end")

    def recommend(self) -> int:
        if not any(self.curves):
            return self.candidates[0] if self.candidates else int(self.order[0])
        return super().recommend()


@register("transfer_screening")
class TransferScreening(_Screening):
    """Successive halving over the top ``k`` configs of the zero-shot order.

    Args:
        k: how many of the transferred ranking's top configs to screen.
        screen_epochs: epochs of the first rung (r_min).
        eta: halving rate; a rung keeps ``max(1, floor(m / eta))`` of its m members.
    """

    def rank_configs(self, problem: TransferProblem) -> tuple[np.ndarray, np.ndarray]:
        order = mean_rank_order(problem.train_grids, self.rng.random(problem.n_configs))
        return order[: self.k], order


@register("per_task_screening")
class PerTaskScreening(_Screening):
    """Each training task's own top ``k`` configs (by best value over epochs), screened.

    Candidates are deduplicated and listed in zero-shot order; a task's ties are broken by the
    same order. After them, the zero-shot order.

    Args:
        k: configs per training task (1: each task's best).
        screen_epochs, eta: as :class:`TransferScreening`.
    """

    def __init__(self, k: int = 1, screen_epochs: int = 5, eta: int = 3) -> None:
        super().__init__(k=k, screen_epochs=screen_epochs, eta=eta)

    def rank_configs(self, problem: TransferProblem) -> tuple[np.ndarray, np.ndarray]:
        order = mean_rank_order(problem.train_grids, self.rng.random(problem.n_configs))
        position = np.empty(problem.n_configs, dtype=np.int64)
        position[order] = np.arange(problem.n_configs)
        chosen: set[int] = set()
        for grid in problem.train_grids:
            chosen.update(int(c) for c in np.lexsort((position, config_ranks(grid)))[: self.k])
        return np.array(sorted(chosen, key=lambda c: position[c]), dtype=np.int64), order


@register("portfolio_zero_shot")
class PortfolioZeroShot(_Screening):
    """The first ``k`` configs of the greedy portfolio (:func:`greedy_portfolio`), screened.

    Ties in the greedy are broken by the zero-shot order. ``k = 1`` trains the whole portfolio
    in order, each config to its end.

    Args:
        k: how many of the portfolio's first configs to screen.
        screen_epochs, eta: as :class:`TransferScreening`.
    """

    def rank_configs(self, problem: TransferProblem) -> tuple[np.ndarray, np.ndarray]:
        zero_shot = mean_rank_order(problem.train_grids, self.rng.random(problem.n_configs))
        position = np.empty(problem.n_configs, dtype=np.int64)
        position[zero_shot] = np.arange(problem.n_configs)
        order = greedy_portfolio(best_over_epochs(problem.train_grids), position)
        return order[: self.k], order
