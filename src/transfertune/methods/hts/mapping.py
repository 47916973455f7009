"""The transfer function g of HTS (seed 001, section 3.2 and appendix A.3).

g should map a config x to x_hat = g(x) such that f_T(x_hat) correlates with f_S(x)
(Equation 1: min_theta 1 - corr(f_S(x), f_T(g(x; theta)))). The paper replaces f_S, f_T by
their surrogates and the correlation by ranks: two arrays A and B of Latin hypercube samples
are sorted by S_S and by S_T, and the i-th of each form a training pair, so the objective
becomes the mean squared distance between g(A_(i)) and B_(i)::

    M = {(A_(i), B_(i))},  A_(1..n) sorted by S_S ascending,  B_(1..n) sorted by S_T ascending
    J(theta) = 1/n sum_i ||g(A_(i); theta) - B_(i)||^2

g is one hidden layer of 20k sigmoid units (k hyperparameters) with sigmoid outputs, so that
g maps the unit cube into itself (appendix A.3: "we constrain the output of the network to be in
the same range [0, 1]"). Shapes: ``(n, dim) -> (n, dim)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


def rank_pairs(A: np.ndarray, source_values: np.ndarray, B: np.ndarray, target_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training set M: inputs ``A`` sorted by ``S_S(A)``, desired outputs ``B`` sorted by
    ``S_T(B)``, both ascending (lowest error first). ``A``, ``B``: ``(n, dim)``; values ``(n,)``.
    Ties keep their sample order (stable sort)."""
    if len(A) != len(B) or len(A) != len(source_values) or len(B) != len(target_values):
        raise ValueError(f"rank pairs need arrays of one length, got {len(A)}, {len(source_values)}, {len(B)}, {len(target_values)}")
    inputs = np.asarray(A)[np.argsort(source_values, kind="stable")]
    targets = np.asarray(B)[np.argsort(target_values, kind="stable")]
    return inputs, targets


class TransferNet(nn.Module):
    """g: ``Linear(dim, hidden) -> sigmoid -> Linear(hidden, dim) -> sigmoid``; ``(n, dim) -> (n, dim)`` in [0, 1]."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Linear(hidden, dim), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def map(self, X: np.ndarray) -> np.ndarray:
        """g on unit-cube rows ``(n, dim)`` as float64 ``(n, dim)``."""
        with torch.no_grad():
            return self(torch.as_tensor(np.atleast_2d(X), dtype=torch.float32)).double().numpy()


@dataclass
class MappingFit:
    """A trained g and how its training went.

    Attributes:
        net: g.
        losses: mean squared error of each training epoch (over its mini-batches).
        converged: whether the stopping rule ended the training (else ``max_epochs`` or a fixed
            epoch count did).
    """

    net: TransferNet
    losses: list[float] = field(default_factory=list)
    converged: bool = False

    @property
    def epochs(self) -> int:
        return len(self.losses)


def train_mapping(
    inputs: np.ndarray,
    targets: np.ndarray,
    hidden: int,
    seed: int,
    lr: float = 0.01,
    batch_size: int = 500,
    epochs: int | None = None,
    max_epochs: int = 200,
    patience: int = 5,
    tol: float = 1e-4,
    on_epoch: Callable[[int, TransferNet], None] | None = None,
) -> MappingFit:
    """Train g on M by Adam on the mean squared error until it converges.

    ``epochs`` (the default of HTS, docs/methods/hts.md): exactly that many epochs. Why not a
    stopping rule: on rank-paired data g's loss first sits on a plateau (g predicts the mean of
    the level sets, near the centre) and only later drops as g learns where the low level sets
    lie; a rule on the loss's progress stops on the plateau (on a known map, tests/methods/hts/
    test_mapping.py, the rule below stops after about 20 epochs 8 % above the loss that 100
    epochs reach, and g's image of the source optimum is 0.3 from the target optimum instead of
    0.1). ``epochs=None``: the early-stopping reading of the paper's "after convergence of the
    neural network": the epoch's mean loss has not fallen below ``(1 - tol)`` times the best so
    far for ``patience`` epochs; ``max_epochs`` bounds the training. Initial weights and batch
    order come from ``seed``. ``on_epoch(epoch, net)`` is called after each epoch (1-based), e.g.
    to record g's map along the way.
    """
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer or None, got {epochs!r}")
    X = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    Y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = TransferNet(X.shape[1], int(hidden))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    fit = MappingFit(net)
    best, stale = np.inf, 0
    n = len(X)
    for _ in range(int(epochs if epochs is not None else max_epochs)):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            loss = nn.functional.mse_loss(net(X[batch]), Y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        fit.losses.append(total / n)
        if on_epoch is not None:
            on_epoch(len(fit.losses), net)
        if epochs is not None:
            continue
        if fit.losses[-1] < best * (1.0 - tol):
            best, stale = fit.losses[-1], 0
        else:
            stale += 1
            if stale >= patience:
                fit.converged = True
                break
    net.eval()
    return fit
