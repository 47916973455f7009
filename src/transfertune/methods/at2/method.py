"""AT2 (seed 004, section 3.4): the multi-task multi-fidelity GP with Max-Trial-GP-UCB.

Max-Trial-GP-UCB: with ``phi = mu + eta * sigma`` on the test task, choose
``c = argmax_c max_e phi(t*, c, e)`` and query ``(c, e_max|c + 1)``: a config may be chosen for
its promise at any fidelity, but it is trained one epoch further. The paper's recommendation for
F_q is the config with the highest predicted mean (max over epochs; ``recommend_from: all``); the
default recommends the best observed value (docs/methods/at2.md says why). Cold start: no test
observation at the beginning; each new observation updates the model before the next query.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.stats import norm

from transfertune.core.device import pick_device
from transfertune.errors import ConfigurationError
from transfertune.methods.at2.kernels import CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS
from transfertune.methods.at2.model import ExactAT2, KernelChoice
from transfertune.methods.base import Method, TransferProblem
from transfertune.methods.registry import register

logger = logging.getLogger(__name__)

INFERENCES = ("exact_kronecker", "svgp")
RECOMMENDATIONS = ("best_value", "all")


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


def max_trial_ucb(mean: np.ndarray, std: np.ndarray, eta: float, allowed: np.ndarray, reachable: np.ndarray | None = None) -> int:
    """Index of ``argmax_c max_e (mean + eta * std)`` among the ``allowed`` configs (ties: the
    lowest index).

    With ``reachable`` (per config, the last epoch the remaining budget can train it to), the max
    over epochs only counts epochs a config can still reach.

    Args:
        mean, std: ``(n, E)`` posterior on the test task.  allowed: ``(n,)`` bool.
    """
    return int(np.argmax(np.where(allowed, ucb_scores(mean, std, eta, reachable), -np.inf)))


def expected_max_gain(a: np.ndarray, b: np.ndarray) -> float:
    """``E[max_i (a_i + b_i Z)] - max_i a_i`` for ``Z ~ N(0, 1)`` (``(k,)`` each; ``a_i = -inf``
    drops line i): the discrete knowledge gradient of Frazier, Powell and Dayanik (2009). The
    upper envelope of the lines ``a_i + b_i z`` is built with lines sorted by slope; with slopes
    ``b_j`` and breakpoints ``c_j`` on it, the gain is ``sum_j (b_{j+1} - b_j) f(-|c_j|)``,
    ``f(z) = z Phi(z) + phi(z)``."""
    keep = np.isfinite(a)
    a, b = np.asarray(a, dtype=np.float64)[keep], np.asarray(b, dtype=np.float64)[keep]
    if len(a) == 0:
        return 0.0
    order = np.lexsort((a, b))  # by slope, then intercept
    a, b = a[order], b[order]
    last = np.append(b[1:] != b[:-1], True)  # of equal slopes only the highest line can be on top
    a, b = a[last], b[last]
    lines: list[tuple[float, float]] = []
    breaks: list[float] = []  # breaks[j]: where lines[j] overtakes lines[j - 1] (-inf for the first)
    for ai, bi in zip(a, b):
        while lines:
            z = (lines[-1][0] - ai) / (bi - lines[-1][1])
            if z <= breaks[-1]:
                lines.pop()
                breaks.pop()
            else:
                break
        breaks.append(-np.inf if not lines else z)
        lines.append((ai, bi))
    slopes = np.array([line[1] for line in lines])
    z = -np.abs(np.array(breaks[1:]))
    return float(np.sum(np.diff(slopes) * (z * norm.cdf(z) + norm.pdf(z))))


def knowledge_gradient(mean: np.ndarray, trained: np.ndarray, remaining: int, allowed: np.ndarray, covariance, noise: float) -> np.ndarray:
    """``(n,)``: the value of one more epoch of each allowed config (-inf for the others).

    The value of the state is the highest predicted value a config can still deliver: per config,
    its posterior mean at the best epoch the remaining budget can train it to. Querying config k's
    next epoch costs one epoch of every other config's reach (budget-aware), and its observation
    moves every config's predicted value along ``Cov(f_target, y_k) / sd(y_k)``. The gain is
    ``E[max_c (a_c + b_c Z)] - max_c v_c`` with ``a`` the values after the query's cost (``v`` for
    k, the values one epoch shorter for the others) and ``b`` those slopes: positive when the
    observation may change which config is worth training (screening pays), negative when its
    epoch is better spent on the leader (commit).

    Args:
        mean: ``(n, E)`` posterior mean.  trained: ``(n,)`` epochs so far.  remaining: queries left (>= 1).
        allowed: ``(n,)`` bool, configs with an epoch left.
        covariance: ``covariance(cells_a, cells_b)`` of f, cells ``(config, epoch index)``.
        noise: the test observations' noise variance.
    """
    n, E = mean.shape
    epochs = np.arange(E)[None, :]

    def best_reachable(reach):
        masked = np.where(epochs < reach[:, None], mean, -np.inf)
        peak = masked.argmax(axis=1)
        return masked[np.arange(n), peak], peak

    value_full, peak_full = best_reachable(np.minimum(trained + remaining, E))
    value_short, peak_short = best_reachable(np.minimum(trained + remaining - 1, E))
    candidates = np.flatnonzero(allowed)
    cells = [(int(c), int(trained[c])) for c in candidates]
    cov_full = covariance(list(zip(range(n), peak_full.tolist())), cells)  # (n, K)
    cov_short = covariance(list(zip(range(n), peak_short.tolist())), cells)
    var_y = np.diagonal(covariance(cells, cells)) + noise
    now = value_full.max()
    gains = np.full(n, -np.inf)
    for k, config in enumerate(candidates):
        a, b = value_short.copy(), cov_short[:, k].copy()
        a[config], b[config] = value_full[config], cov_full[config, k]
        b = b / np.sqrt(max(var_y[k], 1e-300))
        gains[config] = expected_max_gain(a, b) + np.max(a) - now
    return gains


DEFAULTS = {
    "task_kernel": "optiland", "config_kernel": "deep_poly", "fidelity_kernel": "acc_curve",
    "inference": "exact_kronecker", "eta": 0.25, "defer_switch": True, "budget_aware": True,
    "recommend_from": "best_value", "weight_var": "auto", "curve_var": 0.0, "mean_prior": True, "u_init": 1.5,
    "fit_steps": 150, "lr": 0.05, "online_steps": 3, "online_lr": 0.1, "incomplete_grids": "warn", "svgp": None,
    "acquisition": "weight_sample",
    "device": "auto",
}
# The paper's AT2 as written (seed 004, sections 3.2 and 3.4): SVGP inference retrained on every
# observation, and Max-Trial-GP-UCB read literally (switch at once, max over all epochs, recommend
# the highest predicted mean).
PRESETS = {
    "paper": {"inference": "svgp", "defer_switch": False, "budget_aware": False, "recommend_from": "all", "acquisition": "ucb"},
}
INCOMPLETE_GRIDS = ("warn", "refuse")
ACQUISITIONS = ("ucb", "weight_sample", "kg")


@register("at2")
class AT2(Method):
    """AT2: the multi-task multi-fidelity GP of section 3.2 with Max-Trial-GP-UCB (section 3.4).

    Every keyword left at None takes the ``preset``'s value, else the default (``DEFAULTS``).

    Args:
        preset: ``paper`` (the paper's inference and acquisition as written, ``PRESETS``) or None.
        task_kernel, config_kernel, fidelity_kernel: one of the four options each (section 3.3).
        inference: ``exact_kronecker`` (exact GP with Kronecker algebra) or ``svgp`` (the paper's).
        eta: UCB trade-off (0.25 in the paper).
        acquisition: ``kg``: the discrete knowledge gradient over the candidate set (each allowed
            config's next epoch, one epoch of cost each) with the joint posterior, budget-aware
            (``knowledge_gradient``; exact inference, else ``ucb``); ``eta``, ``defer_switch`` and
            the weight draw do not apply to it.
            ``weight_sample`` (default: Max-Trial-GP-UCB on ``mean + sum_t z_t G_t``, the
            posterior mean under a posterior draw of the test task's weights on the training
            tasks, ``z ~ N(0, I)`` drawn per query, ``ExactAT2.weight_directions``; needs exact
            inference and ``weight_var`` > 0, else it is ``ucb``) or ``ucb`` (on the posterior
            mean, the paper's).
        defer_switch: when Max-Trial-GP-UCB picks another config than the one queried last, keep
            training the last one while the remaining budget still lets the pick reach the epoch
            where its score peaks and the last one is forecast to deliver at least what the pick
            would over that wait (``defer_switch_to``; off: switch at once, the paper's).
        budget_aware: count only the epochs a config can still reach with the remaining budget in
            the max over epochs (off: all epochs, the paper's).
        recommend_from: ``best_value`` (the config with the best value observed so far) or ``all``
            (the highest posterior mean over every cell: the paper's "highest predicted mean").
        weight_var: prior variance of the perturbation of the test task's weights on the training
            tasks (exact inference; ``auto``: ``1 / T^2``, the weights' own scale; 0: off).
        curve_var: initial variance of a learning-curve offset shared by the test task's configs
            (exact inference; 0: off; when on, its variance and length scale start at the values
            matched on the training tasks and are re-learned online).
        mean_prior: marginalise the test task's unknown constant mean (exact inference).
        u_init: OptiLand's initial U (1.5, the authors' code).
        fit_steps, lr: offline fit of the exact model (Adam on the exact marginal likelihood).
        online_steps, online_lr: Adam steps on the joint likelihood after each test observation.
        incomplete_grids: with exact inference, training grids with missing cells: ``warn`` (one
            line, then the SVGP inference, which handles them) or ``refuse``.
        svgp: options of the SVGP inference (inducing points, epochs, lr, momentum, batch_size,
            online_steps); see ``svgp.SVGPSettings``.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    def __init__(self, preset: str | None = None, task_kernel: str | None = None, config_kernel: str | None = None,
                 fidelity_kernel: str | None = None, inference: str | None = None, eta: float | None = None,
                 defer_switch: bool | None = None, budget_aware: bool | None = None, recommend_from: str | None = None,
                 weight_var: float | str | None = None, curve_var: float | None = None, mean_prior: bool | None = None,
                 u_init: float | None = None, fit_steps: int | None = None, lr: float | None = None,
                 online_steps: int | None = None, online_lr: float | None = None, incomplete_grids: str | None = None,
                 svgp: dict | None = None, device: str | None = None, acquisition: str | None = None):
        if preset is not None and preset not in PRESETS:
            raise ConfigurationError(f"AT2 preset {preset!r} is not one of {sorted(PRESETS)}")
        given = {key: value for key, value in locals().items() if key in DEFAULTS and value is not None}
        settings = {**DEFAULTS, **PRESETS.get(preset, {}), **given}
        self.preset = preset
        for value, options, what in ((settings["task_kernel"], TASK_KERNELS, "task_kernel"),
                                     (settings["config_kernel"], CONFIG_KERNELS, "config_kernel"),
                                     (settings["fidelity_kernel"], FIDELITY_KERNELS, "fidelity_kernel"),
                                     (settings["inference"], INFERENCES, "inference"),
                                     (settings["recommend_from"], RECOMMENDATIONS, "recommend_from"),
                                     (settings["incomplete_grids"], INCOMPLETE_GRIDS, "incomplete_grids"),
                                     (settings["acquisition"], ACQUISITIONS, "acquisition")):
            if value not in options:
                raise ConfigurationError(f"AT2 {what}={value!r} is not one of {options}")
        for name in ("eta", "curve_var", "u_init", "lr", "online_lr"):
            if not np.isfinite(float(settings[name])) or float(settings[name]) < 0:
                raise ConfigurationError(f"AT2 {name} must be a number >= 0, got {settings[name]!r}")
        if settings["u_init"] < 1:
            raise ConfigurationError(f"AT2 u_init must be >= 1 (OptiLand's U bounds gamma in [1, U]), got {settings['u_init']}")
        weight_var = settings["weight_var"]
        if weight_var != "auto" and (isinstance(weight_var, (str, bool)) or not np.isfinite(weight_var) or weight_var < 0):
            raise ConfigurationError(f"AT2 weight_var must be 'auto' or a number >= 0, got {weight_var!r}")
        self.choice = KernelChoice(settings["task_kernel"], settings["config_kernel"], settings["fidelity_kernel"])
        self.inference, self.eta = settings["inference"], float(settings["eta"])
        self.defer_switch, self.budget_aware = bool(settings["defer_switch"]), bool(settings["budget_aware"])
        self.recommend_from = settings["recommend_from"]
        self.weight_var = None if weight_var == "auto" else float(weight_var)
        self.curve_var, self.mean_prior, self.u_init = float(settings["curve_var"]), bool(settings["mean_prior"]), float(settings["u_init"])
        self.fit_steps, self.lr = int(settings["fit_steps"]), float(settings["lr"])
        self.online_steps, self.online_lr = int(settings["online_steps"]), float(settings["online_lr"])
        self.incomplete_grids = settings["incomplete_grids"]
        self.svgp_options = dict(settings["svgp"] or {})
        self.device = settings["device"]
        self.acquisition = settings["acquisition"]
        self._last_config: int | None = None

    def fit(self, problem: TransferProblem) -> None:
        device = pick_device(self.device)
        self._last_config = None
        torch.manual_seed(problem.seed)
        inference = self.inference
        missing = ~np.isfinite(problem.train_grids)
        if inference == "exact_kronecker" and missing.any():
            tasks = [task for task, m in zip(problem.train_tasks, missing) if m.any()]
            message = (f"AT2: the training grids of {tasks} miss {int(missing.sum())} of {missing.size} cells; "
                       "exact_kronecker inference needs complete grids")
            if self.incomplete_grids == "refuse":
                raise ConfigurationError(message + " (incomplete_grids: refuse; set it to warn to use the SVGP inference)")
            logger.warning("%s, so this run uses the SVGP inference", message)
            inference = "svgp"
        if inference == "exact_kronecker":
            self.model = ExactAT2(
                self.choice, problem.space, problem.X, problem.train_grids, fit_steps=self.fit_steps, lr=self.lr,
                online_steps=self.online_steps, online_lr=self.online_lr, u_init=self.u_init,
                mean_prior=self.mean_prior, weight_var=self.weight_var, curve_var=self.curve_var, device=str(device),
            )
        else:  # the SVGP handles incomplete training grids too
            from transfertune.methods.at2.svgp import SVGPAT2, SVGPSettings

            self.model = SVGPAT2(
                self.choice, problem.space, problem.X, problem.train_grids, SVGPSettings(**self.svgp_options),
                u_init=self.u_init, device=str(device), seed=problem.seed,
            )
        self._update_prediction()

    def _update_prediction(self) -> None:
        self.mean, self.std = self.model.predict()
        self._directions = self.model.weight_directions() if self._samples_weights() else None

    def _samples_weights(self) -> bool:
        return self.acquisition == "weight_sample" and getattr(self.model, "offsets", None) is not None \
            and self.model.offsets().weight_var is not None

    def ask(self) -> int:
        trained = self.epoch_counts()
        remaining = int(self.problem.budget - trained.sum())
        reachable = trained + remaining if self.budget_aware else None
        allowed = self.continuable()
        if self.acquisition == "kg" and hasattr(self.model, "covariance"):
            return self._ask_knowledge_gradient(trained, max(remaining, 1), allowed)
        mean = self.mean
        if self._directions is not None:  # the landscape under a posterior draw of the task weights
            mean = mean + np.tensordot(self.rng.standard_normal(self._directions.shape[0]), self._directions, axes=1)
        choice = max_trial_ucb(mean, self.std, self.eta, allowed, reachable)
        last = self._last_config
        if self.defer_switch and last is not None and choice != last and allowed[last]:
            if defer_switch_to(mean, self.std, self.eta, last, choice, trained, remaining):
                return last  # starting the pick later still reaches its peak; meanwhile the last
                # config is forecast to deliver at least as much
        return choice

    def _ask_knowledge_gradient(self, trained: np.ndarray, remaining: int, allowed: np.ndarray) -> int:
        """The allowed config with the largest knowledge gradient (``knowledge_gradient``); when
        no query gains anything (every gain <= 1e-12), the leader: the allowed config with the
        highest predicted value within reach (commit)."""
        gains = knowledge_gradient(self.mean, trained, remaining, allowed, self.model.covariance, float(self.model.test_noise.detach()))
        if np.max(gains) > 1e-12:
            return int(np.argmax(gains))
        return max_trial_ucb(self.mean, self.std, 0.0, allowed, trained + remaining)

    def tell(self, config_index: int, epoch: int, value: float) -> None:
        super().tell(config_index, epoch, value)
        self._last_config = config_index
        self.model.observe(config_index, epoch, value)
        self._update_prediction()

    def recommend(self) -> int:
        if self.recommend_from == "all" or not any(self.curves):
            return int(np.argmax(self.mean.max(axis=1)))
        return super().recommend()
