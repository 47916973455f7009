"""The hypernet ``w_phi(lambda)``: log-hyperparameters in, every weight of the target model out.

Two shapes, both from the paper's experiments: a linear map (enough for a local approximation of
the best response around ``lambda_hat``) and a one-hidden-layer MLP (for the global
approximation over the whole support of ``p(lambda)``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class HyperNet(nn.Module):
    """``w_phi(lam)``: ``lam (..., d)`` -> weights ``(..., P)``.

    Args:
        hyper_dim: ``d``, the number of hyperparameters.
        n_weights: ``P``, the number of target-model weights.
        hidden: width of the tanh hidden layer; ``None`` or ``0`` makes the hypernet linear.
        center, scale: the input is standardised as ``(lam - center) / scale`` so that the same
            learning rate suits any range of log-hyperparameters (a float or a ``(d,)`` tensor).
    """

    def __init__(
        self,
        hyper_dim: int,
        n_weights: int,
        hidden: int | None = None,
        center: float | Tensor = 0.0,
        scale: float | Tensor = 1.0,
    ) -> None:
        super().__init__()
        self.hyper_dim = int(hyper_dim)
        self.n_weights = int(n_weights)
        self.hidden = int(hidden or 0)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32).expand(hyper_dim).clone())
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).expand(hyper_dim).clone())
        if torch.any(self.scale <= 0):
            raise ValueError("scale must be positive")
        if self.hidden:
            # tanh keeps w_phi smooth in lambda, so d w / d lambda (used to descend lambda) is
            # continuous; a ReLU net would give a piecewise-constant Jacobian.
            self.body: nn.Module = nn.Sequential(nn.Linear(hyper_dim, self.hidden), nn.Tanh())
            head_in = self.hidden
        else:
            self.body = nn.Identity()
            head_in = hyper_dim
        self.head = nn.Linear(head_in, n_weights)
        # Start from w = 0 for every lambda (the usual logistic-regression start); the head still
        # gets a gradient, so training moves off it at the first step.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, lam: Tensor) -> Tensor:
        """``lam (..., d)`` -> ``w (..., P)``."""
        if lam.shape[-1] != self.hyper_dim:
            raise ValueError(f"hypernet expects {self.hyper_dim} hyperparameters, got {lam.shape}")
        return self.head(self.body((lam - self.center) / self.scale))
