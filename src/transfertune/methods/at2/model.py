"""The multi-task multi-fidelity GP of AT2 (seed 004, section 3.2) with two inferences.

- ``exact_kronecker`` (default): exact GP; hyperparameters by maximising the exact marginal
  likelihood of the complete training grids (:class:`~.exact.KroneckerMLL`), then the exact
  posterior on the test task (:class:`~.exact.TargetTaskPosterior`).
- ``svgp``: the paper's stochastic variational GP (``svgp.py``).

Both use the same kernels (``kernels.py``), a constant mean per task and a Gaussian likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.exact import KroneckerMLL, TargetTaskPosterior
from transfertune.methods.at2.kernels import (
    OptiLandTaskKernel,
    ProductKernel,
    make_config_kernel,
    make_fidelity_kernel,
    make_task_kernel,
    optiland_statistics,
)


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
        model.product.outputscale = float(Y.var())
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


class ExactAT2:
    """Offline fit on the training grids + online exact posterior on the test task.

    Args:
        choice: the three component kernels.
        space, X: the search space and the ``(n, d)`` encoded candidate configs.
        train_grids: ``(T, n, E)`` complete training grids.
        fit_steps, lr: Adam on the exact marginal likelihood.
        online_steps, online_lr: after each test observation, gradient steps on
            ``log p(y_test | training grids)`` for the parameters of the test task's row of K_T
            (OptiLand: U; MTBO/Deep: the test task's factor/embedding).
        u_init: OptiLand's initial U (the cold-start length-scale boost).
        mean_prior: treat the test task's constant mean as unknown with the spread of the
            training tasks' means as prior variance (marginalised exactly), instead of fixing it
            at their average.
        test_scale: learn the test task's amplitude (its row of K_T times lambda, its variance
            times lambda^2) online with the other test-row parameters; otherwise lambda = 1.
        convex_prior: the test task as a weighted average of the training tasks (weights summing
            to at most 1; see ``TargetTaskPosterior``), not an amplified sum.
        weight_var: prior variance of a perturbation of the weights on the training tasks
            (see ``TargetTaskPosterior``; 0: off).
        curve_var: prior variance of a learning-curve offset shared by the test task's configs
            (see ``TargetTaskPosterior``; 0: off).
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
        u_init: float = 4.0,
        mean_prior: bool = True,
        min_novelty: float | str = 1e-4,
        standardize_tasks: bool = False,
        test_scale: bool = False,
        convex_prior: bool = False,
        weight_var: float = 0.0,
        curve_var: float = 0.0,
        device: str = "cpu",
        progress=None,
    ):
        if not np.isfinite(train_grids).all():
            raise ValueError("exact_kronecker inference needs complete training grids (no NaN); use inference: svgp")
        self.dtype = torch.float64
        self.device = torch.device(device)
        self.T, self.n, self.E = train_grids.shape
        self.X = torch.as_tensor(X, dtype=self.dtype, device=self.device)
        self.epochs = torch.arange(1, self.E + 1, dtype=self.dtype, device=self.device)
        self.Y = torch.as_tensor(train_grids, dtype=self.dtype, device=self.device)
        # Output units of the model. Standardised: each training task in its own z-units, so a
        # task with a wide spread of values does not outweigh the others in the transfer; the
        # test task (its spread unknown) in the units of the average training task.
        self.shift = torch.tensor(0.0, dtype=self.dtype, device=self.device)
        self.scale = torch.tensor(1.0, dtype=self.dtype, device=self.device)
        if standardize_tasks:
            shifts, scales = self.Y.mean(dim=(1, 2)), self.Y.std(dim=(1, 2)).clamp_min(1e-8)
            self.Y = (self.Y - shifts[:, None, None]) / scales[:, None, None]
            self.shift, self.scale = shifts.mean(), scales.mean()
        self.model = AT2Kernel(choice, space, self.T + 1, self.E).to(device=self.device, dtype=self.dtype)
        self.optiland = isinstance(self.model.product.task, OptiLandTaskKernel)
        self.test_observed = torch.zeros((self.n, self.E), dtype=torch.bool, device=self.device)
        self.test_values = torch.zeros((self.n, self.E), dtype=self.dtype, device=self.device)
        if self.optiland:
            self.model.product.task.u = u_init
            self._train_distance, _ = optiland_statistics(self.Y, torch.ones_like(self.Y, dtype=torch.bool))
            self._set_optiland_statistics()
        self.history = fit_exact(self.model, self.X, self.epochs, self.Y, steps=fit_steps, lr=lr, progress=progress)
        self.online_steps, self.online_lr = online_steps, online_lr
        with torch.no_grad():
            K_T = self.model.task_matrix()
            self.posterior = TargetTaskPosterior(
                K_T[: self.T, : self.T],
                self.model.config_matrix(self.X),
                self.model.fidelity_matrix(self.epochs),
                self.model.product.outputscale,
                self.model.noise,
                self.Y,
                self.model.means[: self.T],
                mean_var=float(self.model.means[: self.T].var()) if mean_prior else 0.0,
                min_novelty=min_novelty,
                convex=convex_prior,
                weight_var=weight_var,
                curve_var=curve_var,
            )
        # only the test task's row may move online: the training block is fixed by the offline fit
        task = self.model.product.task
        self._online_params = [p for name, p in task.named_parameters() if name != "raw_xi"]
        # the test task's amplitude relative to the training tasks' (log), learned online
        self.log_test_scale = torch.zeros((), dtype=self.dtype, device=self.device, requires_grad=test_scale)
        if test_scale:
            self._online_params.append(self.log_test_scale)

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
        self.model.product.task.set_statistics(D, R)

    def _test_row(self) -> tuple[torch.Tensor, torch.Tensor]:
        K_T = self.model.task_matrix()
        scale = torch.exp(self.log_test_scale)
        return K_T[self.T, : self.T] * scale, K_T[self.T, self.T] * scale**2

    def observe(self, config_index: int, epoch: int, value: float) -> None:
        """Condition on a test observation (epoch is 1-based) and refit the test row."""
        self.observe_many([config_index], [epoch], [value], refit_steps=self.online_steps)

    def observe_many(self, config_indices, epochs, values, refit_steps: int) -> None:
        """Condition on several test observations (epochs 1-based), then refit the test row once
        with ``refit_steps`` Adam steps (the kernel study conditions on hundreds at a time)."""
        for config_index, epoch, value in zip(config_indices, epochs, values):
            self.test_observed[config_index, epoch - 1] = True
            value = float((value - self.shift) / self.scale)
            self.test_values[config_index, epoch - 1] = value
            self.posterior.add_observation(config_index, epoch - 1, value)
        if self.optiland:
            self._set_optiland_statistics()
        if refit_steps and self._online_params and self.posterior.n_observed >= 2:
            optimizer = torch.optim.Adam(self._online_params, lr=self.online_lr)
            test_mean = self.model.means[self.T].detach()
            for _ in range(refit_steps):
                optimizer.zero_grad()
                a, a_self = self._test_row()
                loss = -self.posterior.log_likelihood(a, a_self, test_mean)
                loss.backward()
                optimizer.step()

    @property
    def noise_std(self) -> float:
        """Standard deviation of the observation noise (the likelihood's)."""
        return float(self.model.noise.detach().sqrt() * self.scale)

    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of f on the test task, each ``(n, E)``."""
        a, a_self = self._test_row()
        mean, var = self.posterior.predict(a, a_self, self.model.means[self.T])
        mean, std = mean * self.scale + self.shift, var.sqrt() * self.scale
        return mean.cpu().numpy(), std.cpu().numpy()
