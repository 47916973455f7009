"""The component kernels of AT2 (seed 004, section 3.3): four options each for task,
configuration and fidelity, combined as the product of Eq. 3.

All three kinds are GPyTorch kernels so that the same modules serve the SVGP of section 3.2
(inputs ``[task, epoch, config encoding]`` in one tensor) and the exact Kronecker inference
(each kernel evaluated once on its own axis).

Inputs:
- task kernels take task indices ``(..., 1)`` (floats holding integers; rounded);
- configuration kernels take unit-cube encodings ``(..., d)`` (see ``SearchSpace.encode``);
- fidelity kernels take epochs ``(..., 1)`` (1..E, not normalised: AccCurve is defined on them).
"""

from __future__ import annotations

import math

import torch
from gpytorch.constraints import GreaterThan, Positive
from gpytorch.kernels import IndexKernel, Kernel, MaternKernel, RBFKernel
from torch import nn

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.exact import TaskMixture

TASK_KERNELS = ("optiland", "mtbo", "deep_linear", "deep_poly")
CONFIG_KERNELS = ("tree", "flat", "deep_linear", "deep_poly")
FIDELITY_KERNELS = ("acc_curve", "fabolas", "rbf", "matern")


def _dense(k) -> torch.Tensor:
    return k.to_dense() if hasattr(k, "to_dense") else k


def _task_index(x: torch.Tensor) -> torch.Tensor:
    return x[..., 0].round().long()


# ============================================================================ task kernels
class OptiLandTaskKernel(Kernel):
    """Eq. 4's similarities ``k = exp(-D / (xi * gamma)^2)``, ``gamma = U / (1 + (U-1) R)``, as a
    joint task covariance that is positive definite by construction.

    ``D`` (landscape distance in [0, 1]) and ``R`` (ratio of matched observations) are data, set
    by :meth:`set_statistics` from the observed grids and recomputed as the test task gains
    observations (:func:`optiland_statistics`). ``xi > 0``, ``U >= 1`` and the test task's
    novelty ``nu > 0`` are learned. Of the ``n_tasks`` tasks the last is the test task:

    - the training block is Eq. 4 itself, ``A_tu = exp(-D_tu / (xi gamma_tu)^2)``. With complete
      training grids every pair is matched on all cells (``R = 1``, ``gamma = 1``) and ``D_tu`` is
      the squared Euclidean distance between the tasks' normalised landscapes over ``|M|``, so
      ``A`` is a Gaussian kernel matrix: positive definite;
    - the test task's weights on the training tasks are its Eq. 4 similarities, normalised:
      ``w_t = k_t / sum_u k_u`` with ``k_t = exp(-D_t* / (xi gamma_t*)^2)``, so the test task is
      a similarity-weighted average of the training tasks' landscapes plus a task of its own with
      variance ``nu`` (:class:`~transfertune.methods.at2.exact.TaskMixture`). Eq. 4's cold start
      carries over: with no matched observation every ``D_t* = 1/2`` and the weights are equal;
      as matched observations arrive ``D`` separates the training tasks, and ``U`` sets how much a
      separation seen on few matches (small ``R``) counts.

    Eq. 4 applied to the test task's row as well is not positive definite in general (the test
    task would be closer to every training task than they are to one another); the mixture keeps
    Eq. 4's ordering of the training tasks and gives the test task a valid row.
    """

    def __init__(self, n_tasks: int, u_init: float = 1.5, xi_init: float = 1.0, novelty_init: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.register_parameter("raw_xi", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_xi", Positive())
        self.register_parameter("raw_u", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_u", GreaterThan(1.0))
        self.register_parameter("raw_novelty", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_novelty", Positive())
        self.xi = xi_init
        self.u = u_init
        self.novelty = novelty_init
        self.register_buffer("distance", torch.full((n_tasks, n_tasks), 0.5))
        self.register_buffer("ratio", torch.zeros(n_tasks, n_tasks))
        self.distance.fill_diagonal_(0.0)
        self.ratio.fill_diagonal_(1.0)

    @property
    def xi(self) -> torch.Tensor:
        return self.raw_xi_constraint.transform(self.raw_xi)

    @xi.setter
    def xi(self, value: float) -> None:
        self.initialize(raw_xi=self.raw_xi_constraint.inverse_transform(torch.as_tensor(float(value))))

    @property
    def u(self) -> torch.Tensor:
        return self.raw_u_constraint.transform(self.raw_u)

    @u.setter
    def u(self, value: float) -> None:
        self.initialize(raw_u=self.raw_u_constraint.inverse_transform(torch.as_tensor(max(float(value), 1.0 + 1e-6))))

    @property
    def novelty(self) -> torch.Tensor:
        return self.raw_novelty_constraint.transform(self.raw_novelty)

    @novelty.setter
    def novelty(self, value: float) -> None:
        self.initialize(raw_novelty=self.raw_novelty_constraint.inverse_transform(torch.as_tensor(max(float(value), 1e-8))))

    def set_statistics(self, distance: torch.Tensor, ratio: torch.Tensor) -> None:
        self.distance = distance.to(self.distance)
        self.ratio = ratio.to(self.ratio)

    def log_similarities(self) -> torch.Tensor:
        """``-D / (xi gamma)^2`` for every task pair, ``(n_tasks, n_tasks)``."""
        gamma = self.u / (1.0 + (self.u - 1.0) * self.ratio)
        return -self.distance / (self.xi * gamma) ** 2

    def similarities(self) -> torch.Tensor:
        """Eq. 4 for every task pair, ``(n_tasks, n_tasks)`` (not PSD in the test task's row)."""
        return torch.exp(self.log_similarities())

    def mixture(self):
        log_k = self.log_similarities()
        A = torch.exp(log_k[:-1, :-1])
        # k_t / sum_u k_u as a softmax of the logs: with small xi gamma every k_t underflows to 0
        # and the plain ratio is 0/0
        return TaskMixture((A + A.T) / 2, torch.softmax(log_k[-1, :-1], dim=0), self.novelty)

    def matrix(self) -> torch.Tensor:
        return self.mixture().full()

    def forward(self, x1, x2, diag=False, **params):
        K = self.matrix()
        i1, i2 = _task_index(x1), _task_index(x2)
        if diag:
            return K[i1, i2]
        return K[i1.unsqueeze(-1), i2.unsqueeze(-2)]


class MTBOTaskKernel(Kernel):
    """Swersky et al. 2013: a free-form task covariance ``B = L L^T + diag(v)`` (IndexKernel)."""

    def __init__(self, n_tasks: int, rank: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.index = IndexKernel(num_tasks=n_tasks, rank=rank or n_tasks)

    def matrix(self) -> torch.Tensor:
        return _dense(self.index.covar_matrix)

    def mixture(self):
        return TaskMixture.from_matrix(self.matrix())

    def forward(self, x1, x2, diag=False, **params):
        K = self.matrix()
        i1, i2 = _task_index(x1), _task_index(x2)
        return K[i1, i2] if diag else K[i1.unsqueeze(-1), i2.unsqueeze(-2)]


class DeepTaskKernel(Kernel):
    """Learned task embeddings with a linear (``z.z'``) or second-order polynomial
    (``(z.z' + c)^2``) kernel, as in BOHAMIANN-style task features (Springenberg et al. 2016)."""

    def __init__(self, n_tasks: int, degree: int, embedding_dim: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.degree = degree
        self.embedding = nn.Embedding(n_tasks, embedding_dim)
        nn.init.normal_(self.embedding.weight, mean=1.0 / math.sqrt(embedding_dim), std=0.1)
        self.register_parameter("raw_offset", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_offset", Positive())

    def matrix(self) -> torch.Tensor:
        z = self.embedding.weight
        K = z @ z.T
        if self.degree == 2:
            K = (K + self.raw_offset_constraint.transform(self.raw_offset)) ** 2
        return K

    def mixture(self):
        return TaskMixture.from_matrix(self.matrix())

    def forward(self, x1, x2, diag=False, **params):
        K = self.matrix()
        i1, i2 = _task_index(x1), _task_index(x2)
        return K[i1, i2] if diag else K[i1.unsqueeze(-1), i2.unsqueeze(-2)]


def make_task_kernel(name: str, n_tasks: int, **options) -> Kernel:
    if name == "optiland":
        return OptiLandTaskKernel(n_tasks, **options)
    if name == "mtbo":
        return MTBOTaskKernel(n_tasks, **options)
    if name in ("deep_linear", "deep_poly"):
        return DeepTaskKernel(n_tasks, degree=1 if name == "deep_linear" else 2, **options)
    raise ValueError(f"unknown task kernel {name!r}; choose from {TASK_KERNELS}")


def optiland_statistics(grids: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances D and matched ratios R of Eq. 4 for every task pair.

    Args:
        grids: ``(T, n, E)`` values (anything where not observed).
        observed: ``(T, n, E)`` bool mask of observed (config, epoch) cells.
    Returns:
        ``D, R`` each ``(T, T)``. Matched vectors are min-max normalised to [0, 1] and shifted to
        zero mean; ``D = ||y1 - y2||^2 / |M|``; with ``|M| <= 1``, ``D = 1/2``.
    """
    T = grids.shape[0]
    D = torch.full((T, T), 0.5, dtype=grids.dtype, device=grids.device)
    R = torch.zeros((T, T), dtype=grids.dtype, device=grids.device)
    cells = observed[0].numel()
    for a in range(T):
        D[a, a], R[a, a] = 0.0, 1.0
        for b in range(a + 1, T):
            match = observed[a] & observed[b]
            m = int(match.sum())
            R[a, b] = R[b, a] = m / cells
            if m <= 1:
                continue
            ya, yb = _normalise(grids[a][match]), _normalise(grids[b][match])
            D[a, b] = D[b, a] = ((ya - yb) ** 2).sum() / m
    return D, R


def _normalise(y: torch.Tensor) -> torch.Tensor:
    span = y.max() - y.min()
    y = (y - y.min()) / span if span > 0 else torch.zeros_like(y)
    return y - y.mean()


# ============================================================================ config kernels
class _ConfigKernelBase(Kernel):
    def __init__(self, space: SearchSpace, **kwargs):
        super().__init__(**kwargs)
        self.slices = space.column_slices()
        self.hps = space.hyperparameters
        self.numeric = [hp.name for hp in self.hps if not hp.is_categorical]
        self.categorical = [hp.name for hp in self.hps if hp.is_categorical]


class _IndividualKernels(_ConfigKernelBase):
    """RBF per numeric hyperparameter, index kernel per categorical (the Tree/Flat parts)."""

    def __init__(self, space: SearchSpace, **kwargs):
        super().__init__(space, **kwargs)
        self.rbf = nn.ModuleDict({n: RBFKernel() for n in self.numeric})
        for kernel in self.rbf.values():
            kernel.lengthscale = 0.5
        self.index = nn.ModuleDict({n: IndexKernel(num_tasks=len(space[n].choices), rank=1) for n in self.categorical})

    def individual(self, name: str, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        sl = self.slices[name]
        if name in self.rbf:
            return _dense(self.rbf[name](x1[..., sl], x2[..., sl]))
        i1 = x1[..., sl].argmax(-1, keepdim=True).float()
        i2 = x2[..., sl].argmax(-1, keepdim=True).float()
        return _dense(self.index[name](i1, i2))


class FlatConfigKernel(_IndividualKernels):
    """Product of every individual kernel, ignoring the conditional structure."""

    def forward(self, x1, x2, diag=False, **params):
        K = None
        for hp in self.hps:
            k = self.individual(hp.name, x1, x2)
            K = k if K is None else K * k
        return torch.diagonal(K, dim1=-2, dim2=-1) if diag else K


class TreeConfigKernel(_IndividualKernels):
    """Sum-product over the tree of conditions (Lévesque et al. 2017 style).

    A categorical node contributes ``k_index * (1 + sum_v [both take v] * prod_{children of v} k)``;
    both summands are PSD, so the product is too. Root numeric nodes multiply in directly.
    """

    def _node(self, name: str, x1, x2) -> torch.Tensor:
        k = self.individual(name, x1, x2)
        hp = next(h for h in self.hps if h.name == name)
        if not hp.is_categorical:
            return k
        sl = self.slices[name]
        branch_sum = None
        for v_index, value in enumerate(hp.choices):
            children = [h.name for h in self.hps if h.parent == name and value in h.parent_values]
            if not children:
                continue
            both = x1[..., sl][..., v_index].unsqueeze(-1) * x2[..., sl][..., v_index].unsqueeze(-2)
            prod = None
            for child in children:
                kc = self._node(child, x1, x2)
                prod = kc if prod is None else prod * kc
            term = both * prod
            branch_sum = term if branch_sum is None else branch_sum + term
        return k if branch_sum is None else k * (1.0 + branch_sum)

    def forward(self, x1, x2, diag=False, **params):
        K = None
        for hp in self.hps:
            if hp.parent is None:
                k = self._node(hp.name, x1, x2)
                K = k if K is None else K * k
        return torch.diagonal(K, dim1=-2, dim2=-1) if diag else K


class DeepConfigKernel(_ConfigKernelBase):
    """Two-layer tanh network on [numeric values, learned categorical embeddings], then a
    linear (``phi.phi'``) or second-order polynomial (``(phi.phi' + c)^2``) kernel."""

    def __init__(self, space: SearchSpace, degree: int, hidden: int = 32, output: int = 16, embedding_dim: int = 3, **kwargs):
        super().__init__(space, **kwargs)
        self.degree = degree
        self.embeddings = nn.ModuleDict({n: nn.Embedding(len(space[n].choices), embedding_dim) for n in self.categorical})
        width = len(self.numeric) + embedding_dim * len(self.categorical)
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, output), nn.Tanh())
        self.register_parameter("raw_offset", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_offset", Positive())
        self.output = output

    def features(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x[..., self.slices[n]] for n in self.numeric]
        parts += [self.embeddings[n](x[..., self.slices[n]].argmax(-1)) for n in self.categorical]
        # scale so that phi.phi' is O(1) whatever the output width
        return self.net(torch.cat(parts, dim=-1).to(self.net[0].weight.dtype)) / math.sqrt(self.output)

    def forward(self, x1, x2, diag=False, **params):
        f1 = self.features(x1)
        f2 = f1 if x2 is x1 else self.features(x2)
        K = f1 @ f2.transpose(-1, -2)
        if self.degree == 2:
            K = (K + self.raw_offset_constraint.transform(self.raw_offset)) ** 2
        return torch.diagonal(K, dim1=-2, dim2=-1) if diag else K


def make_config_kernel(name: str, space: SearchSpace, **options) -> Kernel:
    if name == "tree":
        return TreeConfigKernel(space, **options)
    if name == "flat":
        return FlatConfigKernel(space, **options)
    if name in ("deep_linear", "deep_poly"):
        return DeepConfigKernel(space, degree=1 if name == "deep_linear" else 2, **options)
    raise ValueError(f"unknown configuration kernel {name!r}; choose from {CONFIG_KERNELS}")


# ============================================================================ fidelity kernels
class AccCurveKernel(Kernel):
    """Section 3.3.3 (after Freeze-Thaw): ``int (1-e^{-l e})(1-e^{-l e'}) dpsi(l)`` with a
    Gamma(alpha, beta) mixing measure, in closed form
    ``1 + (b/(e+e'+b))^a - (b/(e+b))^a - (b/(e'+b))^a`` with ``a, b > 0`` learned."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_parameter("raw_alpha", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_alpha", Positive())
        self.register_parameter("raw_beta", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_beta", Positive())
        self.initialize(raw_alpha=self.raw_alpha_constraint.inverse_transform(torch.tensor(1.0)))
        self.initialize(raw_beta=self.raw_beta_constraint.inverse_transform(torch.tensor(5.0)))

    @property
    def alpha(self):
        return self.raw_alpha_constraint.transform(self.raw_alpha)

    @property
    def beta(self):
        return self.raw_beta_constraint.transform(self.raw_beta)

    def forward(self, x1, x2, diag=False, **params):
        a, b = self.alpha, self.beta
        # learned SVGP inducing epochs may drift below 0, where the closed form is undefined
        e1, e2 = x1[..., 0].clamp_min(0.0), x2[..., 0].clamp_min(0.0)
        if diag:
            return 1 + (b / (e1 + e2 + b)) ** a - (b / (e1 + b)) ** a - (b / (e2 + b)) ** a
        e1, e2 = e1.unsqueeze(-1), e2.unsqueeze(-2)
        return 1 + (b / (e1 + e2 + b)) ** a - (b / (e1 + b)) ** a - (b / (e2 + b)) ** a


class FabolasKernel(Kernel):
    """Klein et al. 2017: ``phi(s)^T Sigma phi(s')`` with ``phi(s) = (1, (1 - s)^2)`` for the
    relative budget ``s = e / E`` (monotone change with fidelity); ``Sigma = L L^T`` learned."""

    def __init__(self, max_epoch: int, **kwargs):
        super().__init__(**kwargs)
        self.max_epoch = float(max_epoch)
        self.chol = nn.Parameter(torch.tensor([[1.0, 0.0], [-0.5, 0.5]]))

    def _phi(self, x):
        s = x[..., 0] / self.max_epoch
        return torch.stack([torch.ones_like(s), (1 - s) ** 2], dim=-1)

    def forward(self, x1, x2, diag=False, **params):
        L = torch.tril(self.chol)
        p1, p2 = self._phi(x1) @ L, self._phi(x2) @ L
        if diag:
            return (p1 * p2).sum(-1)
        return p1 @ p2.transpose(-1, -2)


class _ScaledEpochKernel(Kernel):
    """RBF or Matern 5/2 on the epoch scaled to [0, 1]."""

    def __init__(self, base: Kernel, max_epoch: int, **kwargs):
        super().__init__(**kwargs)
        self.base = base
        self.base.lengthscale = 0.3
        self.max_epoch = float(max_epoch)

    def forward(self, x1, x2, diag=False, **params):
        return self.base(x1[..., :1] / self.max_epoch, x2[..., :1] / self.max_epoch, diag=diag)


def make_fidelity_kernel(name: str, max_epoch: int) -> Kernel:
    if name == "acc_curve":
        return AccCurveKernel()
    if name == "fabolas":
        return FabolasKernel(max_epoch)
    if name == "rbf":
        return _ScaledEpochKernel(RBFKernel(), max_epoch)
    if name == "matern":
        return _ScaledEpochKernel(MaternKernel(nu=2.5), max_epoch)
    raise ValueError(f"unknown fidelity kernel {name!r}; choose from {FIDELITY_KERNELS}")


class ProductKernel(Kernel):
    """Eq. 3 on inputs ``[task, epoch, config encoding]``, times an output scale."""

    def __init__(self, task: Kernel, config: Kernel, fidelity: Kernel, **kwargs):
        super().__init__(**kwargs)
        self.task, self.config, self.fidelity = task, config, fidelity
        self.register_parameter("raw_outputscale", nn.Parameter(torch.tensor(0.0)))
        self.register_constraint("raw_outputscale", Positive())

    @property
    def outputscale(self):
        return self.raw_outputscale_constraint.transform(self.raw_outputscale)

    @outputscale.setter
    def outputscale(self, value: float) -> None:
        self.initialize(raw_outputscale=self.raw_outputscale_constraint.inverse_transform(torch.as_tensor(float(value))))

    def forward(self, x1, x2, diag=False, **params):
        kt = _dense(self.task(x1[..., :1], x2[..., :1], diag=diag))
        ke = _dense(self.fidelity(x1[..., 1:2], x2[..., 1:2], diag=diag))
        kc = _dense(self.config(x1[..., 2:], x2[..., 2:], diag=diag))
        return self.outputscale * kt * ke * kc
