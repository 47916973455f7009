"""The two floor baselines: random search and zero-shot transfer."""

from __future__ import annotations

import numpy as np

from transfertune.core.metrics import config_ranks
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.registry import register


class _SequentialFullTraining(Method):
    """Train configs one after another, each to its last epoch, in ``self.order``."""

    order: np.ndarray

    def ask(self) -> int:
        for index in self.order:
            if self.can_continue(int(index)):
                return int(index)
        raise RuntimeError("every config has been trained to its end")


@register("random_search")
class RandomSearch(_SequentialFullTraining):
    """A random config trained epoch by epoch to the end, then the next (no transfer)."""

    uses_transfer = False

    def fit(self, problem: TransferProblem) -> None:
        self.order = self.rng.permutation(problem.n_configs)


@register("zero_shot")
class ZeroShotTransfer(_SequentialFullTraining):
    """Configs ordered by their mean rank on the training tasks, each trained to the end.

    The rank of a config on a task is by its best value over epochs (0 = best); ties in mean
    rank are broken by the repetition's random draw. Before any observation the method
    recommends the top of its order; afterwards, the best config observed.
    """

    def fit(self, problem: TransferProblem) -> None:
        ranks = np.stack([config_ranks(grid) for grid in problem.train_grids])
        mean_rank = ranks.mean(axis=0)
        tiebreak = self.rng.random(problem.n_configs)
        self.order = np.lexsort((tiebreak, mean_rank))

    def recommend(self) -> int:
        if not any(self.curves):
            return int(self.order[0])
        return super().recommend()
