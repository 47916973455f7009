"""Target model: multinomial logistic regression written as a function of a flat weight vector.

The hypernet outputs all weights of this model at once, so the model is kept functional: the
weights are an input, never an ``nn.Parameter``. A flat vector ``w`` of length
``P = F * C + C`` holds the ``(F, C)`` weight matrix row-major followed by the ``C`` biases
(digits: 64 * 10 + 10 = 650; MNIST: 784 * 10 + 10 = 7,850 as in the paper).

Every function accepts a leading batch of weight vectors, ``w`` of shape ``(..., P)``, so one
call evaluates a batch of hyperparameter samples ``lambda_k -> w_phi(lambda_k)`` on the same
minibatch of data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LogisticRegression:
    """Shapes of a logistic regression with ``n_features`` inputs and ``n_classes`` outputs."""

    n_features: int
    n_classes: int

    @property
    def n_weights(self) -> int:
        """``P = F * C + C`` (weight matrix plus biases)."""
        return self.n_features * self.n_classes + self.n_classes

    def class_index(self) -> Tensor:
        """Class that each of the ``P`` weights feeds, shape ``(P,)`` (long).

        Weight ``(i, c)`` sits at flat index ``i * C + c`` and bias ``c`` at ``F * C + c``.
        """
        c = self.n_classes
        return torch.cat([torch.arange(self.n_features * c) % c, torch.arange(c)])

    def split(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """``w (..., P)`` -> weight matrix ``(..., F, C)`` and biases ``(..., C)``."""
        if w.shape[-1] != self.n_weights:
            raise ValueError(f"expected {self.n_weights} weights in the last axis, got {w.shape}")
        fc = self.n_features * self.n_classes
        matrix = w[..., :fc].reshape(*w.shape[:-1], self.n_features, self.n_classes)
        return matrix, w[..., fc:]

    def logits(self, x: Tensor, w: Tensor) -> Tensor:
        """``x (N, F)``, ``w (..., P)`` -> logits ``(..., N, C)``."""
        matrix, bias = self.split(w)
        return torch.matmul(x, matrix) + bias.unsqueeze(-2)

    def data_loss(self, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        """Mean cross-entropy over the ``N`` examples: ``x (N, F)``, ``y (N,)``, ``w (..., P)``
        -> ``(...)``."""
        log_p = torch.log_softmax(self.logits(x, w), dim=-1)
        picked = log_p.gather(-1, y.expand(*log_p.shape[:-2], -1).unsqueeze(-1)).squeeze(-1)
        return -picked.mean(-1)

    def error(self, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        """Misclassification rate, ``(...)``."""
        return (self.logits(x, w).argmax(-1) != y).float().mean(-1)
