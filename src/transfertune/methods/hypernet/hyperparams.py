"""L2 penalties at three sizes, log-parametrised: one global, one per class, one per weight.

A hyperparameter vector ``lam`` of length ``d`` holds logs of L2 coefficients. Each of the
``P`` weights reads one entry through a fixed index map (all zeros for ``global``, the class
index for ``per_class``, the identity for ``per_weight``), so the penalty is

    R(w, lam) = sum_j exp(lam[index[j]]) * w_j ** 2

and the training loss is ``mean cross-entropy + R`` (the penalty is not divided by the number of
training examples; see docs/methods/hypernet.md). Biases are penalised like the other weights,
which is what "one L2 per weight" over the paper's 7,850 weights implies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet.target import LogisticRegression

SIZES = ("global", "per_class", "per_weight")


@dataclass(frozen=True)
class L2Hyperparameters:
    """The map from a log-L2 vector ``(..., d)`` to per-weight coefficients ``(..., P)``."""

    size: str
    target: LogisticRegression
    index: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigurationError(
                f"hyperparameter size {self.size!r} is unknown; use one of {', '.join(SIZES)}"
            )
        p = self.target.n_weights
        if self.size == "global":
            index = torch.zeros(p, dtype=torch.long)
        elif self.size == "per_class":
            index = self.target.class_index()
        else:
            index = torch.arange(p)
        object.__setattr__(self, "index", index)

    @property
    def dim(self) -> int:
        """``d``: 1, ``C`` or ``P``."""
        return {"global": 1, "per_class": self.target.n_classes}.get(
            self.size, self.target.n_weights
        )

    def coefficients(self, lam: Tensor) -> Tensor:
        """``lam (..., d)`` log-coefficients -> ``exp`` coefficients per weight ``(..., P)``."""
        if lam.shape[-1] != self.dim:
            raise ValueError(f"{self.size} L2 expects {self.dim} values in the last axis, got {lam.shape}")
        return torch.exp(lam)[..., self.index.to(lam.device)]

    def penalty(self, w: Tensor, lam: Tensor) -> Tensor:
        """``w (..., P)``, ``lam (..., d)`` -> ``sum_j exp(lam[index[j]]) w_j^2``, ``(...)``."""
        return (self.coefficients(lam) * w.pow(2)).sum(-1)

    def train_loss(self, x: Tensor, y: Tensor, w: Tensor, lam: Tensor) -> Tensor:
        """``L_Train(x, w, lam)``: mean cross-entropy plus the penalty, ``(...)``."""
        return self.target.data_loss(x, y, w) + self.penalty(w, lam)

    def full(self, value: float, device: torch.device | str | None = None) -> Tensor:
        """A hyperparameter vector ``(d,)`` with every entry set to ``value``."""
        return torch.full((self.dim,), float(value), device=device)
