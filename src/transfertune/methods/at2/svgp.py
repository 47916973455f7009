"""The paper's inference (seed 004, section 3.2): a stochastic variational GP.

GPyTorch ``ApproximateGP`` with M learned inducing points, a Cholesky variational distribution
``q(u) = N(m, S)`` and a whitened prior ``p(u) = N(0, I)``, trained on the ELBO of Eq. 1 with
momentum SGD and a linearly decaying learning rate (section 4: M = 1,000, 200 epochs, lr 0.02,
momentum 0.8). Inputs are ``[task, epoch, config encoding]``. Inducing task coordinates are
rounded to task indices inside the task kernels (tasks are discrete), the other coordinates are
learned. After each test observation the model takes ``online_steps`` further ELBO steps on
batches that always contain every test observation (Eq. 1 on the grown data set).
"""

from __future__ import annotations

from dataclasses import dataclass

import gpytorch
import numpy as np
import torch
from gpytorch.models import ApproximateGP
from gpytorch.variational import CholeskyVariationalDistribution, VariationalStrategy

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.kernels import OptiLandTaskKernel, ProductKernel, make_config_kernel, make_fidelity_kernel, make_task_kernel, optiland_statistics
from transfertune.methods.at2.model import KernelChoice


@dataclass
class SVGPSettings:
    inducing_points: int = 1000
    epochs: int = 200
    lr: float = 0.02
    momentum: float = 0.8
    batch_size: int = 1024
    online_steps: int = 10


class TaskMean(gpytorch.means.Mean):
    """A constant mean per task (index in the first input column)."""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.constants = torch.nn.Parameter(torch.zeros(n_tasks))

    def forward(self, x):
        return self.constants[x[..., 0].round().long().clamp(0, len(self.constants) - 1)]


class SVGPModel(ApproximateGP):
    def __init__(self, inducing: torch.Tensor, kernel: ProductKernel, n_tasks: int):
        distribution = CholeskyVariationalDistribution(inducing.shape[0])
        strategy = VariationalStrategy(self, inducing, distribution, learn_inducing_locations=True)
        super().__init__(strategy)
        self.mean_module = TaskMean(n_tasks)
        self.covar_module = kernel

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def grid_inputs(task: int, X: torch.Tensor, n_epochs: int) -> torch.Tensor:
    """``(n * E, 2 + d)`` inputs of one task's grid, config-major (row c*E + e-1)."""
    n = X.shape[0]
    epochs = torch.arange(1, n_epochs + 1, dtype=X.dtype).repeat(n)
    configs = X.repeat_interleave(n_epochs, dim=0)
    tasks = torch.full((n * n_epochs,), float(task), dtype=X.dtype)
    return torch.cat([tasks[:, None], epochs[:, None], configs], dim=1)


class SVGPAT2:
    """Offline SVGP fit on the training grids, online updates on the test task."""

    def __init__(self, choice: KernelChoice, space: SearchSpace, X: np.ndarray, train_grids: np.ndarray,
                 settings: SVGPSettings, u_init: float = 1.5, device: str = "cpu", seed: int = 0, progress=None):
        torch.manual_seed(seed)
        self.settings, self.device = settings, torch.device(device)
        self.T, self.n, self.E = train_grids.shape
        self.X = torch.as_tensor(X, dtype=torch.float32)
        inputs = torch.cat([grid_inputs(t, self.X, self.E) for t in range(self.T)])
        targets = torch.as_tensor(train_grids.reshape(-1), dtype=torch.float32)
        keep = torch.isfinite(targets)
        self.train_x, self.train_y = inputs[keep].to(self.device), targets[keep].to(self.device)
        self.test_x = grid_inputs(self.T, self.X, self.E).to(self.device)
        self.obs_x: list[torch.Tensor] = []
        self.obs_y: list[float] = []
        self.train_grids = torch.as_tensor(np.nan_to_num(train_grids), dtype=torch.float32)
        self.train_observed = torch.as_tensor(np.isfinite(train_grids))
        self.test_values = torch.zeros((self.n, self.E))
        self.test_observed = torch.zeros((self.n, self.E), dtype=torch.bool)

        kernel = ProductKernel(make_task_kernel(choice.task, self.T + 1), make_config_kernel(choice.config, space),
                               make_fidelity_kernel(choice.fidelity, self.E))
        m = min(settings.inducing_points, len(self.train_x))
        inducing = self.train_x[torch.randperm(len(self.train_x), device=self.device)[:m]].clone()
        self.model = SVGPModel(inducing, kernel, self.T + 1).to(self.device)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood().to(self.device)
        with torch.no_grad():
            kernel.outputscale = float(self.train_y.var())
            self.likelihood.noise = 1e-3
            means = [float(self.train_y[self.train_x[:, 0].round() == t].mean()) for t in range(self.T)]
            self.model.mean_module.constants[:] = torch.tensor(means + [float(np.mean(means))])
        self.optiland = isinstance(kernel.task, OptiLandTaskKernel)
        if self.optiland:
            kernel.task.u = u_init
            self._update_optiland()
        params = list(self.model.parameters()) + list(self.likelihood.parameters())
        self.optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum)
        steps_per_epoch = max(1, int(np.ceil(len(self.train_x) / settings.batch_size)))
        total = max(1, settings.epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: max(0.0, 1.0 - i / total))
        self.mll = gpytorch.mlls.VariationalELBO(self.likelihood, self.model, num_data=len(self.train_x))
        self.history = []
        for _ in range(settings.epochs):
            order = torch.randperm(len(self.train_x), device=self.device)
            total_elbo = 0.0
            for start in range(0, len(order), settings.batch_size):
                index = order[start : start + settings.batch_size]
                total_elbo += self._step(self.train_x[index], self.train_y[index]) * len(index)
                scheduler.step()
            self.history.append(total_elbo / len(order))
            if progress is not None:
                progress()
        for group in self.optimizer.param_groups:  # online steps use the final (decayed) rate's floor
            group["lr"] = settings.lr * 0.1

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.model.train()
        self.likelihood.train()
        self.optimizer.zero_grad()
        loss = -self.mll(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return -float(loss.detach())

    def _update_optiland(self) -> None:
        grids = torch.cat([self.train_grids, self.test_values[None]]).double()
        observed = torch.cat([self.train_observed, self.test_observed[None]])
        D, R = optiland_statistics(grids, observed)
        self.model.covar_module.task.set_statistics(D.float(), R.float())

    def observe(self, config_index: int, epoch: int, value: float) -> None:
        self.test_values[config_index, epoch - 1] = value
        self.test_observed[config_index, epoch - 1] = True
        self.obs_x.append(self.test_x[config_index * self.E + epoch - 1])
        self.obs_y.append(float(value))
        if self.optiland:
            self._update_optiland()
        self.mll.num_data = len(self.train_x) + len(self.obs_y)
        obs_x = torch.stack(self.obs_x)
        obs_y = torch.tensor(self.obs_y, device=self.device)
        for _ in range(self.settings.online_steps):
            index = torch.randint(len(self.train_x), (self.settings.batch_size,), device=self.device)
            self._step(torch.cat([self.train_x[index], obs_x]), torch.cat([self.train_y[index], obs_y]))

    @property
    def noise_std(self) -> float:
        """Standard deviation of the observation noise (the likelihood's)."""
        return float(self.likelihood.noise.detach().sqrt())

    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        means, variances = [], []
        for start in range(0, len(self.test_x), 4096):
            f = self.model(self.test_x[start : start + 4096])
            means.append(f.mean)
            variances.append(f.variance)
        mean = torch.cat(means).reshape(self.n, self.E).double().cpu().numpy()
        var = torch.cat(variances).reshape(self.n, self.E).double().cpu().numpy()
        return mean, np.sqrt(np.maximum(var, 1e-12))
