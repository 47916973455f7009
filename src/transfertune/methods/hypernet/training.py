"""Hyper-training: the paper's global (Algorithm 1) and local (Algorithm 2) algorithms.

Global::

    for T_hypernet steps:   x ~ train, lambda ~ p(lambda)
                            phi -= alpha * grad_phi L_Train(x, w_phi(lambda), lambda)
    for T_hyper steps:      x ~ valid
                            lambda_hat -= beta * grad_lambda_hat L_Valid(x, w_phi(lambda_hat))

Local (alternating)::

    for T_joint steps:      x ~ train, lambda ~ p(lambda | lambda_hat)
                            phi -= alpha * grad_phi L_Train(x, w_phi(lambda), lambda)
                            x ~ valid
                            lambda_hat -= beta * grad_lambda_hat L_Valid(x, w_phi(lambda_hat))

``p(lambda)`` is uniform on the box ``[low, high]^d`` of log-coefficients and
``p(lambda | lambda_hat) = N(lambda_hat, sigma^2 I)``. Details the paper leaves open (several
lambda samples per phi step, Adam for both updates, projecting lambda_hat onto the box) are
listed in docs/methods/hypernet.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet.data import DataSplit
from transfertune.methods.hypernet.hypernet import HyperNet
from transfertune.methods.hypernet.hyperparams import L2Hyperparameters

Bounds = tuple[float, float]


def _from_mapping(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """Build a config dataclass from a parameter mapping, naming unknown keys."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**values)


def _positive(where: str, **values: float | int | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ConfigurationError(f"{where}.{name} must be positive, got {value}")


@dataclass(frozen=True)
class GlobalConfig:
    """Settings of Algorithm 1 (global hyper-training).

    ``hidden``: tanh units of the hypernet (0 = linear). ``steps``/``lr``: ``T_hypernet`` and
    ``alpha``; ``hyper_steps``/``hyper_lr``: ``T_hyperparameter`` and ``beta``. ``batch_size``:
    training examples per phi step (``None`` = all); ``n_lambda``: lambda samples per phi step;
    ``hyper_batch_size``: validation examples per lambda step (``None`` = all).
    """

    hidden: int | None = 50
    steps: int = 2000
    lr: float = 3e-3
    batch_size: int | None = None
    n_lambda: int = 16
    hyper_steps: int = 300
    hyper_lr: float = 0.1
    hyper_batch_size: int | None = None

    def __post_init__(self) -> None:
        _positive("hypernet global", steps=self.steps, lr=self.lr, batch_size=self.batch_size,
                  n_lambda=self.n_lambda, hyper_steps=self.hyper_steps, hyper_lr=self.hyper_lr,
                  hyper_batch_size=self.hyper_batch_size)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "GlobalConfig":
        return _from_mapping(cls, values, "hypernet global")


@dataclass(frozen=True)
class LocalConfig:
    """Settings of Algorithm 2 (local hyper-training).

    ``sigma``: standard deviation of ``p(lambda | lambda_hat)`` in log space. ``steps``:
    ``T_joint``; ``inner_steps``: phi steps before each lambda step (1 is the paper's strict
    alternation). Other keys as in :class:`GlobalConfig`.
    """

    hidden: int | None = None
    sigma: float = 0.5
    steps: int = 1500
    inner_steps: int = 1
    lr: float = 3e-3
    batch_size: int | None = None
    n_lambda: int = 16
    hyper_lr: float = 0.01
    hyper_batch_size: int | None = None

    def __post_init__(self) -> None:
        _positive("hypernet local", sigma=self.sigma, steps=self.steps, inner_steps=self.inner_steps,
                  lr=self.lr, batch_size=self.batch_size, n_lambda=self.n_lambda,
                  hyper_lr=self.hyper_lr, hyper_batch_size=self.hyper_batch_size)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "LocalConfig":
        return _from_mapping(cls, values, "hypernet local")


@dataclass
class HyperTrainResult:
    """What a hyper-training run returns.

    ``lam_hat (d,)``: the tuned log-coefficients; ``weights (P,)``: ``w_phi(lam_hat)``;
    ``history``: per-step curves (``phi_loss``: mean training loss over the lambda samples;
    ``val_loss``: hypernet-predicted validation loss at ``lam_hat``; ``lam_mean``: mean of
    ``lam_hat``); ``examples``: training plus validation examples passed forward and backward,
    a compute count comparable with :func:`baselines.train_at_lambda`.
    """

    lam_hat: Tensor
    weights: Tensor
    hypernet: HyperNet
    history: dict[str, list[float]] = field(default_factory=dict)
    examples: int = 0


def _batch(x: Tensor, y: Tensor, size: int | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """A minibatch drawn without replacement (the whole set when ``size`` is None or too big)."""
    if size is None or size >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=gen)[:size].to(x.device)
    return x[idx], y[idx]


def make_hypernet(hp: L2Hyperparameters, hidden: int | None, center: float | Tensor,
                  scale: float | Tensor, seed: int, device: torch.device | str) -> HyperNet:
    """A hypernet for ``hp`` whose random init depends on ``seed`` only (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = HyperNet(hp.dim, hp.target.n_weights, hidden, center, scale)
    return net.to(device)


def uniform_sampler(dim: int, bounds: Bounds, gen: torch.Generator) -> Callable[[int], Tensor]:
    """``p(lambda)``: ``k -> (k, d)`` uniform on ``[low, high]^d``."""
    low, high = bounds
    return lambda k: low + (high - low) * torch.rand(k, dim, generator=gen)


def phi_step(net: HyperNet, opt: torch.optim.Optimizer, hp: L2Hyperparameters, x: Tensor,
             y: Tensor, lams: Tensor) -> float:
    """One step on ``E_lambda L_Train(x, w_phi(lambda), lambda)``; ``lams (K, d)``."""
    opt.zero_grad(set_to_none=True)
    loss = hp.train_loss(x, y, net(lams), lams).mean()
    loss.backward()
    opt.step()
    return float(loss.detach())


def train_hypernet(net: HyperNet, hp: L2Hyperparameters, x: Tensor, y: Tensor,
                   sample: Callable[[int], Tensor], steps: int, lr: float, n_lambda: int,
                   batch_size: int | None, gen: torch.Generator, progress: bool = False,
                   desc: str = "hypernet") -> list[float]:
    """Algorithm 1, lines 3-5: fit phi with lambda drawn by ``sample``; returns the loss curve."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    curve = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        xb, yb = _batch(x, y, batch_size, gen)
        curve.append(phi_step(net, opt, hp, xb, yb, sample(n_lambda).to(x.device)))
    return curve


def descend_lambda(net: HyperNet, hp: L2Hyperparameters, x_val: Tensor, y_val: Tensor,
                   lam0: Tensor, steps: int, lr: float, bounds: Bounds, batch_size: int | None,
                   gen: torch.Generator, progress: bool = False) -> tuple[Tensor, list[float]]:
    """Algorithm 1, lines 6-8: descend ``L_Valid(w_phi(lambda_hat))`` in ``lambda_hat`` (phi fixed).

    ``lambda_hat`` is projected onto ``bounds`` after each step: the global hypernet was only
    trained on that box. Returns ``lambda_hat (d,)`` and the predicted validation loss per step.
    """
    lam = lam0.detach().clone().to(x_val.device).requires_grad_(True)
    opt = torch.optim.Adam([lam], lr=lr)
    for p in net.parameters():
        p.requires_grad_(False)
    curve = []
    try:
        for _ in tqdm(range(steps), desc="lambda", disable=not progress, leave=False):
            xb, yb = _batch(x_val, y_val, batch_size, gen)
            opt.zero_grad(set_to_none=True)
            loss = hp.target.data_loss(xb, yb, net(lam))
            loss.backward()
            opt.step()
            with torch.no_grad():
                lam.clamp_(*bounds)
            curve.append(float(loss.detach()))
    finally:
        for p in net.parameters():
            p.requires_grad_(True)
    return lam.detach(), curve


def global_hypertraining(hp: L2Hyperparameters, data: DataSplit, config: GlobalConfig,
                         bounds: Bounds, lam_init: float, seed: int = 0,
                         progress: bool = False) -> HyperTrainResult:
    """Algorithm 1: learn the best response over ``p(lambda) = U[bounds]^d``, then descend lambda."""
    device = data.x_train.device
    gen = torch.Generator().manual_seed(seed)
    low, high = bounds
    net = make_hypernet(hp, config.hidden, (low + high) / 2, (high - low) / 2, seed, device)
    phi_curve = train_hypernet(net, hp, data.x_train, data.y_train, uniform_sampler(hp.dim, bounds, gen),
                               config.steps, config.lr, config.n_lambda, config.batch_size, gen,
                               progress, desc="global hyper-training")
    lam_hat, val_curve = descend_lambda(net, hp, data.x_val, data.y_val, hp.full(lam_init), config.hyper_steps,
                                        config.hyper_lr, bounds, config.hyper_batch_size, gen, progress)
    n_tr = min(config.batch_size or len(data.y_train), len(data.y_train))
    n_va = min(config.hyper_batch_size or len(data.y_val), len(data.y_val))
    with torch.no_grad():
        weights = net(lam_hat)
    return HyperTrainResult(
        lam_hat, weights, net, {"phi_loss": phi_curve, "val_loss": val_curve},
        examples=config.steps * config.n_lambda * n_tr + config.hyper_steps * n_va,
    )


def local_hypertraining(hp: L2Hyperparameters, data: DataSplit, config: LocalConfig,
                        bounds: Bounds, lam_init: float | Tensor, seed: int = 0,
                        progress: bool = False) -> HyperTrainResult:
    """Algorithm 2: alternate phi steps with lambda ~ N(lambda_hat, sigma^2 I) and lambda steps.

    ``lam_init``: a float (every entry) or a ``(d,)`` tensor. The paper's line 4 writes
    ``w_phi(lambda_hat)`` where line 3 has just drawn ``lambda``; we use the drawn ``lambda`` (the
    sample is otherwise unused and the hypernet would learn no slope around ``lambda_hat``).
    """
    device = data.x_train.device
    gen = torch.Generator().manual_seed(seed)
    lam0 = lam_init.detach().float().cpu() if isinstance(lam_init, Tensor) else hp.full(lam_init)
    net = make_hypernet(hp, config.hidden, lam0, config.sigma * hp.dim ** 0.5, seed, device)
    phi_opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    lam = lam0.clone().to(device).requires_grad_(True)
    lam_opt = torch.optim.Adam([lam], lr=config.hyper_lr)
    history: dict[str, list[float]] = {"phi_loss": [], "val_loss": [], "lam_mean": []}
    for _ in tqdm(range(config.steps), desc=f"local hyper-training ({hp.size})", disable=not progress, leave=False):
        for _ in range(config.inner_steps):
            xb, yb = _batch(data.x_train, data.y_train, config.batch_size, gen)
            noise = torch.randn(config.n_lambda, hp.dim, generator=gen).to(device)
            lams = lam.detach() + config.sigma * noise
            history["phi_loss"].append(phi_step(net, phi_opt, hp, xb, yb, lams))
        xb, yb = _batch(data.x_val, data.y_val, config.hyper_batch_size, gen)
        lam_opt.zero_grad(set_to_none=True)
        # Only lambda_hat moves in this step; phi's gradient from the validation loss is dropped.
        val = hp.target.data_loss(xb, yb, net(lam))
        val.backward()
        lam_opt.step()
        with torch.no_grad():
            lam.clamp_(*bounds)
        history["val_loss"].append(float(val.detach()))
        history["lam_mean"].append(float(lam.detach().mean()))
    n_tr = min(config.batch_size or len(data.y_train), len(data.y_train))
    n_va = min(config.hyper_batch_size or len(data.y_val), len(data.y_val))
    with torch.no_grad():
        weights = net(lam.detach())
    return HyperTrainResult(
        lam.detach(), weights, net, history,
        examples=config.steps * (config.inner_steps * config.n_lambda * n_tr + n_va),
    )
