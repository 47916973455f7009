"""The multi-task multi-fidelity GP of AT2 (seed 004, section 3.2) with two inferences.

- ``exact_kronecker`` (default): exact GP; hyperparameters by maximising the exact marginal
  likelihood of the complete training grids (:class:`~.exact.KroneckerMLL`), then the exact
  posterior on the test task (:class:`~.exact.TargetTaskPosterior`).
- ``svgp``: the paper's stochastic variational GP (``svgp.py``).

Both use the same kernels (``kernels.py``), a constant mean per task and a Gaussian likelihood.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.exact import KroneckerMLL, Offsets, SpectralBasis, TargetTaskPosterior, TaskMixture
from transfertune.methods.at2.kernels import (
    OptiLandTaskKernel,
    ProductKernel,
    make_config_kernel,
    make_fidelity_kernel,
    make_task_kernel,
    optiland_statistics,
)

logger = logging.getLogger(__name__)

# The test task's noise variance is re-learned online above this share of the training tasks'
# (ExactAT2.test_noise says why).
TEST_NOISE_FLOOR = 0.1


@dataclass
class KernelChoice:
    task: str = "optiland"
    config: str = "deep_poly"
    fidelity: str = "acc_curve"

    @property
    def label(self) -> str:
        return f"{self.task} x {self.config} x {self.fidelity}"


class AT2Kernel(nn.Module):
    """Product kernel (Eq. 3) + per-task constant means + Gaussian noise, over T+1 tasks
    (the T training tasks, then the test task at index T)."""

    def __init__(self, choice: KernelChoice, space: SearchSpace, n_tasks: int, n_epochs: int):
        super().__init__()
        self.choice = choice
        self.n_tasks = n_tasks
        self.product = ProductKernel(
            make_task_kernel(choice.task, n_tasks),
            make_config_kernel(choice.config, space),
            make_fidelity_kernel(choice.fidelity, n_epochs),
        )
        self.raw_noise = nn.Parameter(torch.tensor(-7.0))
        self.means = nn.Parameter(torch.zeros(n_tasks))

    @property
    def noise(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_noise) + 1e-6

    def task_matrix(self) -> torch.Tensor:
        return self.product.task.matrix()

    def config_matrix(self, X: torch.Tensor) -> torch.Tensor:
        K = self.product.config(X, X)
        return K.to_dense() if hasattr(K, "to_dense") else K

    def fidelity_matrix(self, epochs: torch.Tensor) -> torch.Tensor:
        K = self.product.fidelity(epochs[:, None], epochs[:, None])
        return K.to_dense() if hasattr(K, "to_dense") else K


def fit_exact(
    model: AT2Kernel,
    X: torch.Tensor,
    epochs: torch.Tensor,
    Y: torch.Tensor,
    steps: int = 150,
    lr: float = 0.05,
    progress=None,
) -> list[float]:
    """Maximise the exact marginal likelihood of the complete training grids ``Y (T, n, E)``.

    Returns the per-datum log likelihood after each step.
    """
    T = Y.shape[0]
    with torch.no_grad():
        model.means[:T] = Y.mean(dim=(1, 2))
        model.means[T:] = Y.mean()
        model.product.outputscale = max(float(Y.var()), 1e-6)  # training grids of one value have no scale of their own
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        A = model.task_matrix()[:T, :T]
        KC = model.config_matrix(X)
        KE = model.fidelity_matrix(epochs)
        Yc = Y - model.means[:T, None, None]
        mll = KroneckerMLL.apply(A, KC, KE, model.product.outputscale, model.noise, Yc) / Y.numel()
        (-mll).backward()
        optimizer.step()
        history.append(float(mll.detach()))
        if progress is not None:
            progress()
    with torch.no_grad():
        # The test task has no data in this likelihood, so its mean never moves; the fitted
        # training means are the baseline the kernel's curves rise from (with AccCurve they sit
        # far below the data mean), so the test task starts at their average.
        model.means[T:] = model.means[:T].mean()
    return history


def _normalised_weights(similarity: torch.Tensor) -> torch.Tensor:
    """``similarity / sum(similarity)``; equal weights when every similarity is 0 (a task far from
    all others: ``exp(-D / xi^2)`` underflows), where the ratio would be 0/0."""
    total = similarity.sum()
    if not total > 0:
        return torch.full_like(similarity, 1.0 / similarity.numel())
    return similarity / total


def leave_one_out_novelty(A: torch.Tensor) -> torch.Tensor:
    """How much of a training task its similarity-weighted average of the others leaves
    unexplained, averaged over the training tasks: the test task's novelty before it is observed.

    For task t with weights ``v_u = A_tu / sum_{u != t} A_tu`` on the others, the variance of
    ``f_t - sum_u v_u f_u`` under the task covariance ``A`` ``(T, T)`` is
    ``A_tt - 2 v^T A_{-t,t} + v^T A_{-t,-t} v``. (A single training task: its own variance.)
    """
    T = A.shape[0]
    if T == 1:
        return A[0, 0]
    values = []
    for t in range(T):
        others = [u for u in range(T) if u != t]
        v = _normalised_weights(A[t, others])
        values.append(A[t, t] - 2 * v @ A[others, t] + v @ A[others][:, others] @ v)
    return torch.stack(values).mean()


def leave_one_task_out_residuals(Y: torch.Tensor, k: int, similarity: torch.Tensor | None = None) -> torch.Tensor:
    """How each training task departs from the others: ``(T, k, E)`` residuals
    ``Y_t[S_t] - sum_{u != t} v_tu Y_u[S_t]`` on ``S_t``, the ``k`` configs with the best weighted
    mean rank (by best value over epochs) on the others. The weights ``v_tu`` are ``similarity[t, u]``
    normalised over the others (None: equal). ``Y``: ``(T, n, E)``, ``T >= 2``."""
    T = Y.shape[0]
    ranks = Y.max(dim=2).values.argsort(dim=1, descending=True).argsort(dim=1).to(Y.dtype)
    out = []
    for t in range(T):
        others = [u for u in range(T) if u != t]
        v = torch.ones(T - 1, dtype=Y.dtype, device=Y.device) if similarity is None else similarity[t, others].to(Y)
        v = _normalised_weights(v)
        S = (v @ ranks[others]).argsort()[:k]
        out.append(Y[t, S] - torch.einsum("u,uce->ce", v, Y[others][:, S]))
    return torch.stack(out)


def fit_matern_curves(curves: torch.Tensor, gaps: torch.Tensor, steps: int = 100) -> tuple[float, float]:
    """Maximum-likelihood variance and length scale (epochs) of a zero-mean Matern-5/2 GP from
    independent draws ``curves`` ``(T, E)`` (a small nugget keeps it well posed). ``gaps``: ``(E, E)``."""
    raw = torch.tensor([math.log(float(curves.var()) + 1e-8), math.log(10.0)], dtype=curves.dtype, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.1)
    eye = torch.eye(curves.shape[1], dtype=curves.dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        K = Offsets(curve_var=raw[0].exp(), curve_lengthscale=raw[1].exp()).curve_kernel(gaps) + 1e-6 * eye
        loss = -torch.distributions.MultivariateNormal(torch.zeros_like(curves[0]), K).log_prob(curves).sum()
        loss.backward()
        optimizer.step()
    return float(raw[0].exp()), float(raw[1].exp())


class ExactAT2:
    """Offline fit on the training grids + online exact posterior on the test task.

    Offline: Adam on the exact marginal likelihood of the complete training grids (every kernel
    parameter, the noise and the training tasks' means). Online, after each test observation:
    OptiLand's D and R are recomputed, then ``online_steps`` Adam steps re-learn, on the joint
    likelihood ``log p(Y_train) + log p(y_test | Y_train)``, every parameter of the task
    covariance (OptiLand: xi, U and the test task's novelty nu; MTBO and the deep task kernels:
    their factors / embeddings) and the test task's noise. The configuration and fidelity kernels,
    the output scale and the training noise and means stay as fitted offline (the training grids
    determine them; see docs/methods/at2.md).

    Args:
        choice: the three component kernels.
        space, X: the search space and the ``(n, d)`` encoded candidate configs.
        train_grids: ``(T, n, E)`` complete training grids.
        fit_steps, lr: Adam on the exact marginal likelihood.
        online_steps, online_lr: Adam on the joint likelihood after each test observation.
        u_init: OptiLand's initial U.
        mean_prior: treat the test task's constant mean as unknown with the spread of the
            training tasks' means as prior variance (marginalised exactly), instead of fixing it
            at their average.
        weight_var: prior variance of a perturbation of the weights on the training tasks
            (see ``TargetTaskPosterior``; 0: off; None: ``1 / T^2``).
    """

    def __init__(
        self,
        choice: KernelChoice,
        space: SearchSpace,
        X: np.ndarray,
        train_grids: np.ndarray,
        fit_steps: int = 150,
        lr: float = 0.05,
        online_steps: int = 3,
        online_lr: float = 0.1,
        u_init: float = 1.5,
        mean_prior: bool = True,
        weight_var: float | None = None,
        curve_var: float = 0.0,
        cold_start_configs: int = 20,
        device: str = "cpu",
        progress=None,
    ):
        if not np.isfinite(train_grids).all():
            raise ValueError("exact_kronecker inference needs complete training grids (no NaN); use inference: svgp")
        self.dtype = torch.float64
        self.device = torch.device(device)
        self.cold_start_configs = int(cold_start_configs)
        self.T, self.n, self.E = train_grids.shape
        self.X = torch.as_tensor(X, dtype=self.dtype, device=self.device)
        self.epochs = torch.arange(1, self.E + 1, dtype=self.dtype, device=self.device)
        self.Y = torch.as_tensor(train_grids, dtype=self.dtype, device=self.device)
        self.model = AT2Kernel(choice, space, self.T + 1, self.E).to(device=self.device, dtype=self.dtype)
        self.task_kernel = self.model.product.task
        self.optiland = isinstance(self.task_kernel, OptiLandTaskKernel)
        self.test_observed = torch.zeros((self.n, self.E), dtype=torch.bool, device=self.device)
        self.test_values = torch.zeros((self.n, self.E), dtype=self.dtype, device=self.device)
        if self.optiland:
            self.task_kernel.u = u_init
            self._train_distance, _ = optiland_statistics(self.Y, torch.ones_like(self.Y, dtype=torch.bool))
            self._set_optiland_statistics()
        self.history = fit_exact(self.model, self.X, self.epochs, self.Y, steps=fit_steps, lr=lr, progress=progress)
        self.online_steps, self.online_lr = online_steps, online_lr
        with torch.no_grad():
            if self.optiland:  # before any observation the test task is as novel as a training task is
                self.task_kernel.novelty = float(leave_one_out_novelty(self.task_kernel.mixture().A))
            means = self.model.means.detach()
            KC, KE = self.model.config_matrix(self.X), self.model.fidelity_matrix(self.epochs)
            basis = SpectralBasis(KC, KE, self.Y, means[: self.T])
            noise = self.model.noise.detach()
            self.posterior = TargetTaskPosterior(basis, self.model.product.outputscale.detach(), noise, KC, KE)
        self.test_mean = means[self.T]
        # the test task's noise starts at the training tasks' and is re-learned online, above a
        # floor (TEST_NOISE_FLOOR of the training noise): see test_noise
        self.test_noise_floor = TEST_NOISE_FLOOR * noise
        self.raw_test_noise = torch.log(noise - self.test_noise_floor).clone().requires_grad_(True)
        self.skipped_steps = 0  # online steps whose likelihood or gradient was not finite
        # log-variances of the offsets shared by the test task's configs, re-learned online
        log = lambda v: torch.tensor(math.log(v), dtype=self.dtype, device=self.device, requires_grad=True)
        mean_var = float(means[: self.T].var()) if self.T > 1 else float(self.Y.var())
        if weight_var is None:  # the weights are uncertain on their own scale, 1 / T
            weight_var = 1.0 / self.T**2
        self.raw_offsets = {
            name: log(v) for name, v in (("mean_var", mean_var if mean_prior else 0.0), ("curve_var", curve_var),
                                         ("curve_lengthscale", 10.0 if curve_var else 0.0), ("weight_var", weight_var)) if v > 0
        }
        if self.optiland and self.T > 1:
            self._fit_cold_start(means[: self.T])
        # re-learned online: what ties the test task to the training tasks and its noise; the
        # variances of its own part and offsets stay at the values matched on the training tasks
        # (from a few observations of one config, maximum likelihood drives them to zero)
        self._online_params = [p for name, p in self.task_kernel.named_parameters() if name != "raw_novelty"] + [self.raw_test_noise]
        # one optimiser for the whole session: each query continues the re-learning where the last left it
        self._optimizer = torch.optim.Adam(self._online_params, lr=online_lr)

    def _fit_cold_start(self, means: torch.Tensor) -> None:
        """The variances the test task starts with, matched to how the training tasks differ
        from the average of the others (:func:`leave_one_task_out_residuals`) on the configs the
        others rank best, where the acquisition acts: the residuals' part shared by those configs
        sets the constant and curve offsets, the rest the novelty ``nu``."""
        # each held-out task against the others weighted as OptiLand weighs a fully observed task:
        # the test task's novelty once it is placed among the training tasks (not knowing where it
        # belongs is the weights' uncertainty, weight_var)
        similarity = self.mixture().A.detach()
        r = leave_one_task_out_residuals(self.Y, self.cold_start_configs, similarity)  # (T, k, E)
        shared = r.mean(1)  # (T, E)
        level = shared.mean(1, keepdim=True)
        specific = r - shared[:, None, :]
        with torch.no_grad():
            KE_diag = torch.diagonal(self.posterior.KE)
            self.task_kernel.novelty = float((specific**2).mean() / (self.posterior.s * KE_diag).mean())
            if "mean_var" in self.raw_offsets:
                self.raw_offsets["mean_var"].fill_(math.log(float((level**2).mean()) + 1e-12))
        if "curve_var" in self.raw_offsets:
            variance, lengthscale = fit_matern_curves(shared - level, self.posterior.epoch_gaps)
            with torch.no_grad():
                self.raw_offsets["curve_var"].fill_(math.log(variance))
                self.raw_offsets["curve_lengthscale"].fill_(math.log(lengthscale))

    def offsets(self) -> Offsets:
        values = {name: torch.exp(raw) for name, raw in self.raw_offsets.items()}
        return Offsets(mean_var=values.get("mean_var", 0.0), curve_var=values.get("curve_var"),
                       curve_lengthscale=values.get("curve_lengthscale", 10.0), weight_var=values.get("weight_var"))

    @property
    def test_noise(self) -> torch.Tensor:
        """The test task's noise variance, ``floor + exp(raw)``. Without the floor, maximum
        likelihood drives it to 0 whenever the observations can be fitted exactly (ties, constant
        or flat curves: 1e-15 after 100 queries of a flat task); the test likelihood then grows
        without bound, outweighs ``log p(Y_train)`` and drags ``xi`` until the task block is the
        identity (the crash of issue 31)."""
        return self.test_noise_floor + torch.exp(self.raw_test_noise)

    def _set_optiland_statistics(self) -> None:
        """Eq. 4's D and R between the test task (index T) and each training task."""
        T = self.T
        D = torch.full((T + 1, T + 1), 0.5, dtype=self.dtype, device=self.device)
        R = torch.zeros((T + 1, T + 1), dtype=self.dtype, device=self.device)
        D[:T, :T] = self._train_distance
        R[:T, :T] = 1.0
        D[T, T], R[T, T] = 0.0, 1.0
        grids = torch.cat([self.Y, self.test_values[None]], dim=0)
        observed = torch.cat([torch.ones_like(self.Y, dtype=torch.bool), self.test_observed[None]], dim=0)
        for t in range(T):
            d, r = optiland_statistics(grids[[t, T]], observed[[t, T]])
            D[t, T] = D[T, t] = d[0, 1]
            R[t, T] = R[T, t] = r[0, 1]
        self.task_kernel.set_statistics(D, R)

    @torch.no_grad()
    def weights(self) -> torch.Tensor:
        """``(T,)`` the test task's weights on the training tasks given its observations."""
        return self.posterior.weights(self.mixture(), self.offsets(), self.test_mean, self.test_noise)

    @torch.no_grad()
    def weight_directions(self) -> np.ndarray:
        """``(T, n, E)``: a posterior draw of the test task's landscape over its weights on the
        training tasks is ``mean + sum_t z_t G_t``, ``z ~ N(0, I)`` (see ``TargetTaskPosterior``)."""
        return self.posterior.weight_directions(self.mixture(), self.offsets(), self.test_noise).cpu().numpy()

    def mixture(self) -> TaskMixture:
        """The joint task covariance (training block, test weights, novelty) as it stands."""
        return self.task_kernel.mixture()

    def observe(self, config_index: int, epoch: int, value: float) -> None:
        """Condition on a test observation (epoch is 1-based) and re-learn the task covariance."""
        self.observe_many([config_index], [epoch], [value], refit_steps=self.online_steps)

    def observe_many(self, config_indices, epochs, values, refit_steps: int) -> None:
        """Condition on several test observations (epochs 1-based), then take ``refit_steps`` Adam
        steps on the joint likelihood once (the kernel study conditions on hundreds at a time)."""
        for config_index, epoch, value in zip(config_indices, epochs, values):
            self.test_observed[config_index, epoch - 1] = True
            self.test_values[config_index, epoch - 1] = float(value)
            self.posterior.add_observation(config_index, epoch - 1, float(value))
        if self.optiland:
            self._set_optiland_statistics()
        for _ in range(refit_steps):
            self._optimizer.zero_grad()
            loss = -self.joint_log_likelihood()
            loss.backward()
            if not (torch.isfinite(loss) and all(p.grad is None or torch.isfinite(p.grad).all() for p in self._online_params)):
                # a step on a non-finite likelihood or gradient would make the parameters NaN;
                # keep them as they are (counted in skipped_steps)
                self.skipped_steps += 1
                if self.skipped_steps == 1:
                    logger.warning("AT2: an online step met a non-finite likelihood or gradient and was skipped "
                                   "(the task covariance keeps its last parameters)")
                continue
            self._optimizer.step()

    def joint_log_likelihood(self) -> torch.Tensor:
        """``log p(Y_train) + log p(y_test | Y_train)`` under the current task covariance."""
        mix = self.mixture()
        train = self.posterior.train_log_likelihood(mix.A)
        return train + self.posterior.log_likelihood(mix, self.offsets(), self.test_mean, self.test_noise)

    @property
    def noise_std(self) -> float:
        """Standard deviation of the test task's observation noise."""
        return float(self.test_noise.detach().sqrt())

    @torch.no_grad()
    def covariance(self, cells_a, cells_b) -> np.ndarray:
        """Posterior covariance of f on the test task between two lists of ``(config, epoch
        index)`` cells (0-based epochs), ``(|a|, |b|)``."""
        return self.posterior.covariance(self.mixture(), self.offsets(), self.test_noise, cells_a, cells_b).cpu().numpy()

    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of f on the test task, each ``(n, E)``."""
        mean, var = self.posterior.predict(self.mixture(), self.offsets(), self.test_mean, self.test_noise)
        return mean.cpu().numpy(), var.sqrt().cpu().numpy()
