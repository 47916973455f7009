"""AT2 (seed 004, section 3.4): the multi-task multi-fidelity GP with Max-Trial-GP-UCB.

Max-Trial-GP-UCB: with ``phi = mu + eta * sigma`` on the test task, choose
``c = argmax_c max_e phi(t*, c, e)`` and query ``(c, e_max|c + 1)``: a config may be chosen for
its promise at any fidelity, but it is trained one epoch further. The paper's recommendation for
F_q is the config with the highest predicted mean (max over epochs; ``recommend_from: all``); the
default recommends the best observed value (docs/methods/at2.md says why). Cold start: no test
observation at the beginning; each new observation updates the model before the next query.
"""

from __future__ import annotations

import numpy as np
import torch

from transfertune.core.device import pick_device
from transfertune.errors import ConfigurationError
from transfertune.methods.at2.kernels import CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS
from transfertune.methods.at2.model import ExactAT2, KernelChoice
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.registry import register

INFERENCES = ("exact_kronecker", "svgp")
RECOMMENDATIONS = ("all", "observed", "best_value")
DEFER_RULES = ("reach_peak", "anytime")


def _epochs_before(limits: np.ndarray, n_epochs: int) -> np.ndarray:
    """``(n, E)`` bool: epoch index e (0-based) of config c is below ``limits[c]``."""
    return np.arange(n_epochs)[None, :] < np.asarray(limits)[:, None]


def ucb_scores(mean: np.ndarray, std: np.ndarray, eta: float, reachable: np.ndarray | None = None) -> np.ndarray:
    """``(n,)``: ``max_e (mean + eta * std)`` per config, over the ``reachable`` epochs if given
    (per config, the last epoch the remaining budget can train it to)."""
    phi = mean + eta * std
    if reachable is not None:
        phi = np.where(_epochs_before(reachable, phi.shape[1]), phi, -np.inf)
    return phi.max(axis=1)


def epochs_to_peak(mean: np.ndarray, std: np.ndarray, eta: float, config: int, trained: int, remaining: int) -> int:
    """Queries ``config`` needs to reach the epoch where its UCB score peaks, among the epochs the
    ``remaining`` budget can reach (at least 1)."""
    phi = (mean[config] + eta * std[config])[: trained + remaining]
    return max(int(np.argmax(phi)) + 1 - trained, 1)


def defer_switch_to(mean: np.ndarray, std: np.ndarray, eta: float, last: int, pick: int, trained: np.ndarray, remaining: int) -> bool:
    """Whether to train ``last`` one more epoch before starting ``pick``: the ``remaining``
    budget still lets ``pick`` reach the epoch where its UCB score peaks after that epoch, and
    over the wait ``last`` is forecast (posterior mean, max over the epochs each would have
    reached) to deliver at least what ``pick`` would. ``trained``: epochs so far, per config."""
    slack = remaining - epochs_to_peak(mean, std, eta, pick, int(trained[pick]), remaining)
    if slack <= 0:
        return False
    within = _epochs_before(trained[[last, pick]] + slack, mean.shape[1])
    best_last, best_pick = np.where(within, mean[[last, pick]], -np.inf).max(axis=1)
    return bool(best_last >= best_pick)


def anytime_delay(mean: np.ndarray, last: int, pick: int, trained: np.ndarray, trial_length: np.ndarray,
                  remaining: int, incumbent: float) -> int:
    """How many more epochs to train ``last`` before starting ``pick``, chosen to maximise the
    forecast best value averaged over the ``remaining`` queries (simple regret at every q, not
    only at the end of the budget).

    Plan d trains ``last`` d more epochs, then ``pick`` for the rest of the budget (as far as its
    trial length allows). Its forecast best value after t queries is the largest of the
    ``incumbent`` (best value observed so far: epochs already trained are sunk, not lost) and
    the posterior mean's running max over the epochs each config will have reached. Plans run
    from d = 0 (switch now) to training ``last`` to the end of its trial; ties go to the smaller
    d, so the argmax pick is started unless waiting is forecast to pay.

    Args:
        mean: ``(n, E)`` posterior mean on the test task.  trained, trial_length: ``(n,)`` int.
    Returns:
        The best d (0: start ``pick`` now).
    """
    if remaining <= 0:
        return 0
    # per config, the running max of its future epochs, after a -inf for "not started yet"
    running_last, running_pick = (
        np.concatenate([[-np.inf], np.maximum.accumulate(mean[config, int(trained[config]) : int(trial_length[config])])])
        for config in (last, pick)
    )
    t = np.arange(1, remaining + 1)[None, :]  # queries from now
    d = np.arange(0, min(remaining, running_last.size - 1) + 1)[:, None]  # epochs of last first
    from_last = running_last[np.minimum(t, d)]
    from_pick = running_pick[np.clip(t - d, 0, running_pick.size - 1)]
    best = np.maximum(np.maximum(from_last, from_pick), incumbent)
    return int(np.argmax(best.mean(axis=1)))


def max_trial_ucb(
    mean: np.ndarray,
    std: np.ndarray,
    eta: float,
    allowed: np.ndarray,
    incumbent: int | None = None,
    margin: float = 0.0,
    reachable: np.ndarray | None = None,
) -> int:
    """Index of ``argmax_c max_e (mean + eta * std)`` among the ``allowed`` configs.

    With an ``incumbent`` (the config queried last) and ``margin > 0``, the incumbent is kept
    while its score is within ``margin`` of the best: a lead smaller than that is not evidence
    enough to pay for restarting another config from its first epochs.

    With ``reachable`` (per config, the last epoch the remaining budget can train it to), the max
    over epochs only counts epochs a config can still reach.

    Args:
        mean, std: ``(n, E)`` posterior on the test task.  allowed: ``(n,)`` bool.
    """
    score = np.where(allowed, ucb_scores(mean, std, eta, reachable), -np.inf)
    best = int(np.argmax(score))
    if incumbent is not None and margin > 0 and allowed[incumbent] and score[incumbent] >= score[best] - margin:
        return int(incumbent)
    return best


@register("at2")
class AT2(Method):
    """AT2 with the kernels, inference and acquisition settings as keywords.

    Args:
        task_kernel, config_kernel, fidelity_kernel: one of the four options each (section 3.3).
        inference: ``exact_kronecker`` (default) or ``svgp`` (the paper's).
        eta: UCB trade-off (0.25 in the paper).
        fit_steps, lr: offline fit of the exact model (Adam on the exact marginal likelihood).
        online_steps, online_lr: test-row refit after each observation (exact inference).
        u_init: OptiLand's initial U (20: at cold start the test task leans on the training tasks).
        mean_prior: marginalise the test task's unknown constant mean (exact inference).
        standardize_tasks: model each training task's values in its own standard units (exact
            inference); off by default (see docs/benchmarks.md, inner pairs).
        test_scale: learn the test task's amplitude relative to the training tasks' online (exact
            inference); off by default (better early, worse at q = 100 on the inner pairs).
        convex_prior: the test task's prior mean as a weighted average of the training tasks'
            (weights summing to at most 1) instead of the amplified combination the shrunk
            OptiLand row gives (exact inference); off by default (better at q = 25, worse at
            q = 100 on the inner pairs).
        weight_var: prior variance of a perturbation of the test task's weights on the training
            tasks' deviations (exact inference; 0, the default: the joint GP's fixed combination);
            off by default (better at q = 50, worse at q = 100 on the inner pairs).
        curve_var: prior variance of a learning-curve offset shared by all the test task's configs
            (exact inference; 0, the default: only the constant offset of ``mean_prior``); off by
            default (better at q = 50 and 100, worse at q = 25 on the inner pairs).
        switch_margin: keep training the config queried last while its score is within this many
            noise standard deviations of the best (0, the default: the paper's plain argmax).
        recommend_from: ``best_value`` (the config with the best value observed so far),
            ``observed`` (the highest posterior mean over the cells queried so far) or ``all``
            (the highest posterior mean over every cell, extrapolations included: the paper's).
        budget_aware: count only the epochs a config can still reach with the remaining budget
            in Max-Trial-GP-UCB's max over epochs.
        defer_switch: when Max-Trial-GP-UCB picks another config than the one queried last,
            keep training the last one while the remaining budget still lets the new pick reach
            the epoch where its score peaks and the last one is forecast to deliver at least what
            the pick would over that wait (on by default; off: switch at once, the paper's).
        defer_rule: how ``defer_switch`` decides to wait: ``reach_peak`` (the default; the rule
            above) or ``anytime`` (wait while a plan that starts the pick later is forecast to give
            a higher best value averaged over the remaining queries: ``anytime_delay``).
        warmup_configs, warmup_epochs: a low-fidelity initial design before Max-Trial-GP-UCB:
            the first ``warmup_epochs`` epochs of the ``warmup_configs`` configs with the best
            cold-start score, epoch 1 of each first (0: none, the paper's cold start; off by
            default, see docs/benchmarks.md).
        min_novelty: floor of the test task's residual variance given the training tasks, as a
            share of its own (exact inference; ``"loo"``: the least novel training task's).
        svgp: options of the SVGP inference (inducing points, epochs, lr, momentum, batch_size,
            online_steps); see ``svgp.SVGPSettings``.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    def __init__(
        self,
        task_kernel: str = "optiland",
        config_kernel: str = "deep_poly",
        fidelity_kernel: str = "acc_curve",
        inference: str = "exact_kronecker",
        eta: float = 0.25,
        fit_steps: int = 150,
        lr: float = 0.05,
        online_steps: int = 3,
        online_lr: float = 0.1,
        u_init: float = 20.0,
        mean_prior: bool = True,
        svgp: dict | None = None,
        device: str = "auto",
        switch_margin: float = 0.0,
        recommend_from: str = "best_value",
        min_novelty: float | str = 1e-4,
        budget_aware: bool = True,
        standardize_tasks: bool = False,
        test_scale: bool = False,
        warmup_configs: int = 0,
        warmup_epochs: int = 2,
        convex_prior: bool = False,
        defer_switch: bool = True,
        weight_var: float = 0.0,
        curve_var: float = 0.0,
        defer_rule: str = "reach_peak",
    ):
        for value, options, what in ((task_kernel, TASK_KERNELS, "task_kernel"), (config_kernel, CONFIG_KERNELS, "config_kernel"),
                                     (fidelity_kernel, FIDELITY_KERNELS, "fidelity_kernel"), (inference, INFERENCES, "inference")):
            if value not in options:
                raise ConfigurationError(f"AT2 {what}={value!r} is not one of {options}")
        if eta < 0:
            raise ConfigurationError(f"AT2 eta must be >= 0, got {eta}")
        self.choice = KernelChoice(task_kernel, config_kernel, fidelity_kernel)
        self.inference, self.eta = inference, float(eta)
        self.fit_steps, self.lr = int(fit_steps), float(lr)
        self.online_steps, self.online_lr, self.u_init = int(online_steps), float(online_lr), float(u_init)
        self.mean_prior = bool(mean_prior)
        self.svgp_options = dict(svgp or {})
        self.device = device
        if switch_margin < 0:
            raise ConfigurationError(f"AT2 switch_margin must be >= 0, got {switch_margin}")
        self.switch_margin = float(switch_margin)
        if recommend_from not in RECOMMENDATIONS:
            raise ConfigurationError(f"AT2 recommend_from must be one of {RECOMMENDATIONS}, got {recommend_from!r}")
        self.recommend_from = recommend_from
        if min_novelty != "loo" and (isinstance(min_novelty, (str, bool)) or not 0 <= min_novelty < 1):
            raise ConfigurationError(f"AT2 min_novelty must be 'loo' or a number in [0, 1), got {min_novelty!r}")
        self.min_novelty = min_novelty
        self.budget_aware = bool(budget_aware)
        self.standardize_tasks = bool(standardize_tasks)
        self.test_scale = bool(test_scale)
        self.convex_prior = bool(convex_prior)
        self.defer_switch = bool(defer_switch)
        if defer_rule not in DEFER_RULES:
            raise ConfigurationError(f"AT2 defer_rule must be one of {DEFER_RULES}, got {defer_rule!r}")
        self.defer_rule = defer_rule
        if weight_var < 0:
            raise ConfigurationError(f"AT2 weight_var must be >= 0, got {weight_var}")
        self.weight_var = float(weight_var)
        if curve_var < 0:
            raise ConfigurationError(f"AT2 curve_var must be >= 0, got {curve_var}")
        self.curve_var = float(curve_var)
        if warmup_configs < 0 or warmup_epochs < 1:
            raise ConfigurationError(f"AT2 warmup_configs must be >= 0 and warmup_epochs >= 1, got {warmup_configs} and {warmup_epochs}")
        self.warmup_configs, self.warmup_epochs = int(warmup_configs), int(warmup_epochs)
        self._last_config: int | None = None
        self._warmup: list[int] = []

    def fit(self, problem: TransferProblem) -> None:
        device = pick_device(self.device)
        self._last_config = None
        torch.manual_seed(problem.seed)
        exact_possible = np.isfinite(problem.train_grids).all()
        if self.inference == "exact_kronecker" and exact_possible:
            self.model = ExactAT2(
                self.choice, problem.space, problem.X, problem.train_grids, fit_steps=self.fit_steps, lr=self.lr,
                online_steps=self.online_steps, online_lr=self.online_lr, u_init=self.u_init,
                mean_prior=self.mean_prior, min_novelty=self.min_novelty, standardize_tasks=self.standardize_tasks,
                test_scale=self.test_scale, convex_prior=self.convex_prior, weight_var=self.weight_var, curve_var=self.curve_var, device=str(device),
            )
        else:  # the SVGP handles incomplete training grids too
            from transfertune.methods.at2.svgp import SVGPAT2, SVGPSettings

            self.model = SVGPAT2(
                self.choice, problem.space, problem.X, problem.train_grids, SVGPSettings(**self.svgp_options),
                u_init=self.u_init, device=str(device), seed=problem.seed,
            )
        self._update_prediction()
        if self.warmup_configs:
            score = ucb_scores(self.mean, self.std, self.eta)
            self._warmup = [int(i) for i in np.argsort(-score, kind="stable")[: self.warmup_configs]]

    def _update_prediction(self) -> None:
        self.mean, self.std = self.model.predict()

    def ask(self) -> int:
        # the initial design, breadth first: early epochs of several configs are what OptiLand's
        # landscape distance compares across tasks
        for epoch in range(1, self.warmup_epochs + 1):
            for index in self._warmup:
                if self.trained_epochs(index) < epoch and self.can_continue(index):
                    return index
        margin = self.switch_margin * self.model.noise_std if self.switch_margin else 0.0
        trained = self.epoch_counts()
        remaining = int(self.problem.budget - trained.sum())
        reachable = trained + remaining if self.budget_aware else None
        allowed = self.continuable()
        choice = max_trial_ucb(self.mean, self.std, self.eta, allowed, self._last_config, margin, reachable)
        last = self._last_config
        if self.defer_switch and last is not None and choice != last and allowed[last]:
            if self.defer_rule == "anytime":
                incumbent = float(self.observed_best().max())
                if anytime_delay(self.mean, last, choice, trained, self.problem.trial_length, remaining, incumbent) > 0:
                    return last  # waiting is forecast to give the better best value over the queries left
            elif defer_switch_to(self.mean, self.std, self.eta, last, choice, trained, remaining):
                return last  # starting the pick later still reaches its peak; meanwhile the last
                # config is forecast to deliver at least as much
        return choice

    def tell(self, config_index: int, epoch: int, value: float) -> None:
        super().tell(config_index, epoch, value)
        self._last_config = config_index
        self.model.observe(config_index, epoch, value)
        self._update_prediction()

    def recommend(self) -> int:
        if self.recommend_from == "all" or not any(self.curves):
            return int(np.argmax(self.mean.max(axis=1)))
        if self.recommend_from == "best_value":
            return super().recommend()
        # observed, in-sample: the posterior mean over the cells queried so far
        seen = _epochs_before(self.epoch_counts(), self.mean.shape[1])
        return int(np.argmax(np.where(seen, self.mean, -np.inf).max(axis=1)))
