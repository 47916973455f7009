"""Seed 001's methods as searchers of the trial protocol: ``hts``, ``hord`` and ``source_order``.

Every ask is one *evaluation* in the paper's sense: a new trial trained for ``epochs`` epochs
(the paper: 10), whose value at its last epoch is f's (f = -value: the protocol's metrics are
higher-is-better, the paper minimises the validation error; the surrogates do not care about
the shift). A trial that diverges counts as the worst value told so far in the run (0 before any
tell). Asking stops (``BudgetExhausted``) after t_max = budget // epochs evaluations (a diverged
one counts, as the paper counts evaluations, though it spent fewer epochs), or when the budget
left is less than one evaluation, so an evaluation is never cut short.

- ``hts``: Algorithm 1 (:class:`~transfertune.methods.hts.algorithm.HTS`) on the source
  observations of ``problem.history``, the two variations of appendix A.1 as options
  (``n_random``: random source configs mapped with the r best; ``hord_after``: HTS as an
  initialiser for DYCORS);
- ``hord``: no transfer, pySOT's DYCORS with the cubic RBF from a Latin hypercube (HORD, the
  paper's baseline);
- ``source_order``: the paper's "linear" baseline: the source's configs in order of their source
  error, evaluated unmapped.

The source is ``problem.history``: its configs and, per config, the mean over its tasks of the
recorded value at epoch ``epochs`` (one task in the live pipeline; a catalog pair's training
tasks on HyperRec). A config that diverged on the source counts as the worst recorded value.
On a catalog, configs the methods propose snap to the nearest recorded one (``off_pool:
nearest``, see :class:`~transfertune.core.objectives.TabularObjective`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from transfertune.core.objectives import BudgetExhausted
from transfertune.core.trials import Trial
from transfertune.errors import ConfigurationError
from transfertune.methods.hts.algorithm import DEFAULT_G_EPOCHS, HTS, check_same_space
from transfertune.methods.hts.dycors import DycorsSearch
from transfertune.methods.protocol import SearchProblem, SpaceSearcher, TrialState
from transfertune.methods.registry import register


def source_observations(problem: SearchProblem, epoch: int, method: str) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Omega_S from ``problem.history``: its configs and their errors ``-mean_tasks value[epoch]``, ``(n,)``."""
    history = problem.history
    if history is None or len(history.train_tasks) == 0:
        raise ConfigurationError(f"method {method!r} transfers from a source: give it a database of tuning on the source task")
    check_same_space(history.space, problem.space)
    if epoch > history.n_epochs:
        raise ConfigurationError(
            f"method {method!r} evaluates configs at epoch {epoch}, but the source has only {history.n_epochs} recorded epoch(s); lower epochs"
        )
    values = history.train_grids[:, :, epoch - 1]
    counts = np.isfinite(values).sum(axis=0)
    means = np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)
    if not np.isfinite(means).any():
        raise ConfigurationError(f"method {method!r}: no source config has a recorded value at epoch {epoch}")
    means[~np.isfinite(means)] = np.nanmin(means)
    return [dict(c) for c in history.configs], -means


class EvaluationSearcher(SpaceSearcher):
    """Base of the seed-001 searchers: one ask = one evaluation (see the module docstring).

    Subclasses implement :meth:`start` (after the problem is known), :meth:`next_config` (the
    config to evaluate and a tag to remember it by, or None to wait) and :meth:`evaluated`.

    Args:
        epochs: epochs per evaluation (None: the maximal fidelity E).
    """

    def __init__(self, epochs: int | None = None) -> None:
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ConfigurationError(f"{self.name} epochs must be a positive integer or null, got {epochs!r}")
        self.epochs = epochs

    def fit(self, problem: SearchProblem) -> None:
        self.trial_epochs = min(self.epochs or problem.max_epochs, problem.max_epochs)
        self.t_max = int(problem.budget) // self.trial_epochs
        if self.t_max < 1:
            raise ConfigurationError(f"method {self.name!r}: a budget of {problem.budget} epochs holds no evaluation of {self.trial_epochs} epochs")
        self.tags: dict[int, Any] = {}
        self.finished: list[tuple[int, float]] = []  # (trial id, f) in the order evaluations ended
        self.start(problem)

    def start(self, problem: SearchProblem) -> None:
        """Set up the search (source surrogate, designs)."""

    def next_config(self) -> tuple[dict[str, Any], Any] | None:
        raise NotImplementedError

    def evaluated(self, state: TrialState, f: float, tag: Any) -> None:
        """An evaluation ended with ``f`` (lower is better)."""

    def ask(self) -> Trial | None:
        if len(self.trials) >= self.t_max:
            raise BudgetExhausted(f"the {self.t_max} evaluations of the budget were asked")
        if self.remaining < self.trial_epochs:
            raise BudgetExhausted(f"{self.remaining} epoch(s) left, less than one evaluation of {self.trial_epochs}")
        proposed = self.next_config()
        if proposed is None:
            return None
        config, tag = proposed
        trial = self.new_trial(config, self.trial_epochs)
        self.tags[trial.trial_id] = tag
        return trial

    def observe(self, state: TrialState, epoch: int, value: float) -> None:
        if state.told == state.target:
            self._finish(state, -value)

    def observe_failure(self, state: TrialState, reason: str) -> None:
        told = [v for s in self.trials.values() for v in s.values]
        self._finish(state, -min(told) if told else 0.0)

    def _finish(self, state: TrialState, f: float) -> None:
        self.finished.append((state.trial_id, float(f)))
        self.evaluated(state, float(f), self.tags.pop(state.trial_id))

    def recommend(self) -> dict[str, Any] | None:
        """The config of the best evaluation so far (before any has ended: of the best value told)."""
        if not self.finished:
            return super().recommend()
        trial_id = min(self.finished, key=lambda item: item[1])[0]
        return dict(self.trials[trial_id].config)


@register("hts")
class HTSSearch(EvaluationSearcher):
    """HTS (seed 001, Algorithm 1) on the source observations of ``problem.history``.

    Args:
        epochs: epochs per evaluation (None: the maximal fidelity E).
        m: Latin hypercube samples evaluated first, in [k, 2k] (None: the smallest that fits S_T, max(k, d + 1)).
        r: best source configs mapped by g per round (the paper's 5).
        n_random: random source configs mapped with them per round (appendix A.1; 0: Algorithm 1 as printed).
        hord_after: share of the t_max evaluations after which pySOT's DYCORS (HORD) continues from
            Omega_T (appendix A.1: HTS as an initialiser); None: HTS to the end.
        n_rank_samples: Latin hypercube samples in each array that forms g's training set (the paper's 10,000).
        map_from, bound_source, g_epochs: :class:`~transfertune.methods.hts.algorithm.HTS`'s (the
            paper as printed: ``source``, false, null; the defaults are our fixes).
    """

    uses_transfer = True

    def __init__(
        self,
        epochs: int | None = None,
        m: int | None = None,
        r: int = 5,
        n_random: int = 0,
        hord_after: float | None = None,
        n_rank_samples: int = 10_000,
        map_from: str = "surrogate",
        bound_source: bool = True,
        g_epochs: int | None = DEFAULT_G_EPOCHS,
    ) -> None:
        super().__init__(epochs)
        if hord_after is not None and (isinstance(hord_after, bool) or not isinstance(hord_after, (int, float)) or not 0 < hord_after < 1):
            raise ConfigurationError(f"hts hord_after must be a share of the evaluations in (0, 1) or null, got {hord_after!r}")
        self.m, self.r, self.n_random, self.hord_after, self.n_rank_samples = m, r, n_random, hord_after, n_rank_samples
        self.map_from, self.bound_source, self.g_epochs = map_from, bound_source, g_epochs

    def start(self, problem: SearchProblem) -> None:
        configs, errors = source_observations(problem, self.trial_epochs, self.name)
        self.run = HTS(problem.space, configs, errors, m=self.m, r=self.r, n_random=self.n_random, n_rank_samples=self.n_rank_samples,
                       seed=int(self.rng.integers(2**31 - 1)), map_from=self.map_from, bound_source=self.bound_source, g_epochs=self.g_epochs)
        self.queue: deque[tuple[dict[str, Any], str]] = deque((c, "lhs") for c in self.run.initial_design())
        self.handover = None if self.hord_after is None else math.ceil(self.hord_after * self.t_max)
        if self.handover is not None and self.handover < problem.space.dim + 1:
            # DYCORS's RBF with a linear tail needs d + 1 known points (pySOT asserts it, without words)
            raise ConfigurationError(f"hts hord_after = {self.hord_after} hands over to DYCORS after {self.handover} of the {self.t_max} "
                                     f"evaluations; its RBF needs d + 1 = {problem.space.dim + 1}: raise hord_after or the budget")
        self.dycors: DycorsSearch | None = None
        self.pending = 0

    def next_config(self) -> tuple[dict[str, Any], Any] | None:
        if self.dycors is None and self.handover is not None and len(self.run.omega_t) + self.pending >= self.handover:
            if self.pending:
                return None
            self.dycors = DycorsSearch(self.problem.space, self.t_max, self.rng, known=self.run.target_observations())
        if self.dycors is not None:
            asked = self.dycors.ask()
            if asked is None:
                return None
            key, x = asked
            return self.problem.space.decode(x)[0], ("dycors", key)
        if not self.queue:
            if self.pending:
                return None  # step 8's evaluations come back before S_T is refitted
            self.run.fit_transfer()
            self.queue.extend(self.run.propose())
        config, kind = self.queue.popleft()
        self.pending += 1
        return config, (kind, None)

    def evaluated(self, state: TrialState, f: float, tag: Any) -> None:
        kind, key = tag
        if kind == "dycors":
            self.dycors.tell(key, f)
        else:
            self.pending -= 1
            self.run.observe(state.config, f, kind)


@register("hord")
class HORDSearch(EvaluationSearcher):
    """No transfer: pySOT's DYCORS with the cubic RBF from a Latin hypercube (HORD, the paper's [7]).

    Args:
        epochs: epochs per evaluation (None: the maximal fidelity E).
        n_initial: Latin hypercube size (None: HORD's 2(d + 1)); at least d + 1 for the RBF.
    """

    def __init__(self, epochs: int | None = None, n_initial: int | None = None) -> None:
        super().__init__(epochs)
        if n_initial is not None and (isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 2):
            raise ConfigurationError(f"hord n_initial must be an integer >= 2 or null, got {n_initial!r}")
        self.n_initial = n_initial

    def start(self, problem: SearchProblem) -> None:
        from transfertune.methods.hts.surrogate import tail_columns

        d = len(tail_columns(problem.space))
        if self.n_initial is not None and self.n_initial < d + 1:
            raise ConfigurationError(f"hord n_initial = {self.n_initial}: pySOT's cubic RBF with a linear tail in d = {d} coordinates needs at least d + 1 = {d + 1} points")
        self.dycors = DycorsSearch(problem.space, self.t_max, self.rng, n_initial=self.n_initial)

    def next_config(self) -> tuple[dict[str, Any], Any] | None:
        asked = self.dycors.ask()
        if asked is None:
            return None
        key, x = asked
        return self.problem.space.decode(x)[0], key

    def evaluated(self, state: TrialState, f: float, tag: Any) -> None:
        self.dycors.tell(tag, f)


@register("source_order")
class SourceOrderSearch(EvaluationSearcher):
    """The paper's "linear" baseline (Figure 1): the source's configs, best source error first,
    evaluated on the target as they are (no mapping); random configs of the space once they run out.

    Args:
        epochs: epochs per evaluation (None: the maximal fidelity E).
    """

    uses_transfer = True

    def start(self, problem: SearchProblem) -> None:
        configs, errors = source_observations(problem, self.trial_epochs, self.name)
        self.queue = deque(configs[i] for i in np.argsort(errors, kind="stable"))

    def next_config(self) -> tuple[dict[str, Any], Any]:
        return (self.queue.popleft() if self.queue else self.sample_configs(1)[0]), None

