"""The hp-learner (Meta-HPO, seed 003, section 3.3, Figure 3, Eq. 9, Algorithm 1).

``phi_m(M, theta) -> y_hat``: a meta-feature encoder and a hyperparameter encoder (two-layer
perceptrons) whose outputs ``r_m`` and ``r_c`` are concatenated and fed to a three-layer
perceptron predictor. It is trained on the observations ``{M_i, theta_ik, y_ik}`` of the proxy
subsets with the MSE of Eq. 9, by MAML (Finn et al. 2017) as Algorithm 1 has it: each subset is a
task, its observations are split at random into a *support* and a *query* part at every step;

    phi'_i = phi - alpha grad_phi L_support_i(phi)                 (inner step, per task)
    phi   <- phi - beta grad_phi sum_i L_query_i(phi'_i)            (outer step, over a batch of tasks)

The outer gradient goes through the inner step (second order), computed with ``torch.func``:
``functional_call`` evaluates the network at any parameter dict, ``grad`` differentiates, and
``vmap`` runs the tasks of a batch together (tasks are padded to the same size; padded rows have
weight 0). ``L`` is the mean squared error over a task's (unpadded) observations.

Inputs as the learner sees them: ``theta`` in the unit cube of the search space
(:meth:`SearchSpace.encode`: log-scaled where the space says so); ``M`` centred per dimension on
the training tasks' mean and divided by one common scale (their overall standard deviation), so
the differences between data sets keep their relative sizes; ``y`` standardised with the mean and
standard deviation of the training observations (predictions are mapped back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from transfertune.errors import ConfigurationError

Params = dict[str, torch.Tensor]
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}


class HPLearner(nn.Module):
    """``phi_m``: ``(M (meta_dim,) or (n, meta_dim), theta (n, hp_dim)) -> y_hat (n,)``.

    One data set's ``M`` is encoded once and broadcast over its ``n`` configs.

    meta encoder ``Linear(meta_dim, hidden) - ReLU - Linear(hidden, meta_latent)``;
    hp encoder ``Linear(hp_dim, hidden) - ReLU - Linear(hidden, hp_latent)``;
    predictor ``Linear(meta_latent + hp_latent, hidden) - ReLU - Linear(hidden, hidden) - ReLU - Linear(hidden, 1)``.
    """

    def __init__(self, meta_dim: int, hp_dim: int, hidden: int = 64, meta_latent: int = 32, hp_latent: int = 16, activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigurationError(f"hp_learner.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        for name, value in (("meta_dim", meta_dim), ("hp_dim", hp_dim), ("hidden", hidden), ("meta_latent", meta_latent), ("hp_latent", hp_latent)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigurationError(f"hp_learner.{name} must be a positive integer, got {value!r}")
        self.meta_encoder = nn.Sequential(nn.Linear(meta_dim, hidden), act(), nn.Linear(hidden, meta_latent))
        self.hp_encoder = nn.Sequential(nn.Linear(hp_dim, hidden), act(), nn.Linear(hidden, hp_latent))
        self.predictor = nn.Sequential(nn.Linear(meta_latent + hp_latent, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, 1))

    def forward(self, meta: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        r_m = self.meta_encoder(meta)
        r_c = self.hp_encoder(theta)
        if r_m.dim() == 1 or r_m.shape[0] == 1:
            r_m = r_m.reshape(1, -1).expand(r_c.shape[0], -1)
        return self.predictor(torch.cat([r_m, r_c], dim=-1)).squeeze(-1)


@dataclass
class Task:
    """One proxy subset as a MAML task: its meta feature and observations.

    Attributes:
        name: the subset id.
        meta: ``(meta_dim,)`` raw meta feature ``M_i``.
        theta: ``(K, hp_dim)`` unit-cube configs ``theta_ik``.
        y: ``(K,)`` observed performance ``y_ik`` (higher is better).
    """

    name: str
    meta: np.ndarray
    theta: np.ndarray
    y: np.ndarray


def weighted_mse(model: nn.Module, params: Params, meta: torch.Tensor, theta: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Eq. 9 as a mean over the rows with weight 1: ``sum_k w_k (phi_m(M, theta_k) - y_k)^2 / sum_k w_k``.

    Shapes: ``meta (meta_dim,)`` (or ``(n, meta_dim)``), ``theta (n, hp_dim)``, ``y (n,)``, ``weight (n,)`` of 0/1.
    """
    pred = functional_call(model, params, (meta, theta))
    return (weight * (pred - y) ** 2).sum() / weight.sum().clamp(min=1.0)


def inner_update(model: nn.Module, params: Params, support: tuple[torch.Tensor, ...], alpha: float, steps: int = 1) -> Params:
    """``phi' = phi - alpha grad_phi L_support(phi)``, ``steps`` times (Algorithm 1, line 6).

    Differentiable in ``params`` (``torch.func.grad`` keeps the graph), so an outer gradient
    through it is second order.
    """
    loss_grad = grad(lambda p: weighted_mse(model, p, *support))
    for _ in range(int(steps)):
        g = loss_grad(params)
        params = {k: params[k] - alpha * g[k] for k in params}
    return params


def meta_loss(model: nn.Module, params: Params, support: tuple[torch.Tensor, ...], query: tuple[torch.Tensor, ...], alpha: float, steps: int = 1) -> torch.Tensor:
    """``sum_i L_query_i(phi'_i)`` over the tasks of a batch (Algorithm 1, line 8).

    ``support`` and ``query`` are tuples ``(meta, theta, y, weight)`` with a leading task axis:
    ``meta (T, meta_dim)``, the others ``(T, n_s, ...)`` and ``(T, n_q, ...)``; the tasks run
    together under ``vmap``.
    """

    def one(s: tuple[torch.Tensor, ...], q: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return weighted_mse(model, inner_update(model, params, s, alpha, steps), *q)

    return vmap(one)(support, query).sum()


def outer_step(model: nn.Module, params: Params, support: tuple[torch.Tensor, ...], query: tuple[torch.Tensor, ...], alpha: float, beta: float, steps: int = 1) -> tuple[Params, float]:
    """One outer update ``phi <- phi - beta grad_phi sum_i L_query_i(phi'_i)``; returns the new
    parameters and the meta loss before the step."""
    loss_fn = lambda p: meta_loss(model, p, support, query, alpha, steps)  # noqa: E731
    g = grad(loss_fn)(params)
    with torch.no_grad():
        value = float(loss_fn(params))
    return {k: (params[k] - beta * g[k]).detach() for k in params}, value


@dataclass
class MAMLConfig:
    """Knobs of Algorithm 1 and of the network.

    Attributes:
        hidden, meta_latent, hp_latent: layer sizes of :class:`HPLearner`.
        alpha: inner step size; beta: outer step size (plain gradient steps, as in Algorithm 1).
        inner_steps: inner gradient steps per task (Algorithm 1: one).
        steps: outer steps ``T``.
        tasks_per_step: subsets sampled per outer step (all when fewer).
        support_fraction: share of a task's observations in its support part (at least one
            observation on each side).
        seed: initialisation and the random splits.
    """

    hidden: int = 64
    meta_latent: int = 32
    hp_latent: int = 16
    activation: str = "tanh"
    alpha: float = 0.05
    beta: float = 0.01
    inner_steps: int = 1
    steps: int = 2000
    tasks_per_step: int = 4
    support_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.alpha >= 0 and self.beta > 0):
            raise ConfigurationError(f"hp_learner.alpha must be >= 0 and beta > 0, got {self.alpha}, {self.beta}")
        if not 0 < self.support_fraction < 1:
            raise ConfigurationError(f"hp_learner.support_fraction must be in (0, 1), got {self.support_fraction!r}")
        for name in ("inner_steps", "steps", "tasks_per_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < (0 if name == "inner_steps" else 1):
                raise ConfigurationError(f"hp_learner.{name} must be a {'non-negative' if name == 'inner_steps' else 'positive'} integer, got {value!r}")


@dataclass
class Scaler:
    """The input and output transforms of a fitted learner (see the module docstring)."""

    meta_mean: np.ndarray
    meta_scale: float
    y_mean: float
    y_std: float

    def meta(self, meta: np.ndarray) -> np.ndarray:
        return (np.asarray(meta, dtype=np.float64) - self.meta_mean) / self.meta_scale

    def y(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_std

    def y_back(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z) * self.y_std + self.y_mean

    def as_dict(self) -> dict:
        return {"meta_mean": self.meta_mean.tolist(), "meta_scale": self.meta_scale, "y_mean": self.y_mean, "y_std": self.y_std}

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        return cls(np.asarray(d["meta_mean"], dtype=np.float64), float(d["meta_scale"]), float(d["y_mean"]), float(d["y_std"]))

    @classmethod
    def fit(cls, tasks: Sequence[Task]) -> "Scaler":
        metas = np.stack([t.meta for t in tasks])
        ys = np.concatenate([t.y for t in tasks])
        centred = metas - metas.mean(axis=0)
        scale = float(centred.std()) if centred.size and centred.std() > 1e-12 else 1.0
        return cls(metas.mean(axis=0), scale, float(ys.mean()), float(ys.std()) or 1.0)


@dataclass
class FittedLearner:
    """A trained hp-learner: network, parameters, transforms and the training trace."""

    model: HPLearner
    params: Params
    scaler: Scaler
    config: MAMLConfig
    losses: list[float] = field(default_factory=list)

    def predict(self, meta: np.ndarray, theta: np.ndarray, params: Params | None = None) -> np.ndarray:
        """``y_hat`` (original scale) of unit-cube configs ``theta (n, hp_dim)`` on one data set
        with raw meta feature ``meta (meta_dim,)``."""
        theta_t = torch.as_tensor(np.atleast_2d(theta), dtype=torch.float32)
        meta_t = torch.as_tensor(self.scaler.meta(meta), dtype=torch.float32)
        with torch.no_grad():
            z = functional_call(self.model, params or self.params, (meta_t, theta_t)).double().numpy()
        return self.scaler.y_back(z)

    def torch_objective(self, meta: np.ndarray, params: Params | None = None):
        """``theta (n, hp_dim) tensor -> y_hat (n,)`` in standardised units, differentiable in theta."""
        meta_t = torch.as_tensor(self.scaler.meta(meta), dtype=torch.float32)
        chosen = params or self.params

        def objective(theta: torch.Tensor) -> torch.Tensor:
            return functional_call(self.model, chosen, (meta_t, theta.float()))

        return objective

    def adapt(self, meta: np.ndarray, theta: np.ndarray, y: np.ndarray, steps: int | None = None) -> Params:
        """Inner steps (``alpha``) on observations of a new data set: the adapted parameters."""
        support = _as_tensors(self.scaler.meta(meta), np.atleast_2d(theta), self.scaler.y(y), np.ones(len(y)))
        adapted = inner_update(self.model, self.params, support, self.config.alpha, self.config.inner_steps if steps is None else steps)
        return {k: v.detach() for k, v in adapted.items()}

    def state_dict(self) -> dict:
        import json

        return {"params": {k: v.clone() for k, v in self.params.items()},
                "meta": json.dumps({"scaler": self.scaler.as_dict(), "config": self.config.__dict__,
                                    "meta_dim": int(self.scaler.meta_mean.shape[0]), "hp_dim": int(self.model.hp_encoder[0].in_features)})}


def _as_tensors(meta: np.ndarray, theta: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[torch.Tensor, ...]:
    return (
        torch.as_tensor(meta, dtype=torch.float32),
        torch.as_tensor(theta, dtype=torch.float32),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(weight, dtype=torch.float32),
    )


def split_batch(tasks: Sequence[Task], scaler: Scaler, support_fraction: float, rng: np.random.Generator) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Random support/query split of every task, padded to common sizes: two tuples
    ``(meta, theta, y, weight)`` of shapes ``(T, meta_dim)``, ``(T, n, hp_dim)``, ``(T, n)``, ``(T, n)``."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for task in tasks:
        k = len(task.y)
        order = rng.permutation(k)
        n_s = min(k - 1, max(1, int(round(support_fraction * k))))
        parts.append((order[:n_s], order[n_s:]))
    out = []
    for side in (0, 1):
        width = max(len(p[side]) for p in parts)
        metas, thetas, ys, ws = [], [], [], []
        for task, p in zip(tasks, parts):
            idx = p[side]
            pad = width - len(idx)
            theta = np.vstack([task.theta[idx], np.zeros((pad, task.theta.shape[1]))])
            metas.append(scaler.meta(task.meta))
            thetas.append(theta)
            ys.append(np.concatenate([scaler.y(task.y[idx]), np.zeros(pad)]))
            ws.append(np.concatenate([np.ones(len(idx)), np.zeros(pad)]))
        out.append(tuple(torch.as_tensor(np.stack(a), dtype=torch.float32) for a in (metas, thetas, ys, ws)))
    return out[0], out[1]


def check_tasks(tasks: Sequence[Task]) -> None:
    """One-line errors for tasks MAML cannot split or that disagree in shape."""
    if not tasks:
        raise ConfigurationError("the hp-learner needs at least one proxy subset with observations")
    meta_dim, hp_dim = tasks[0].meta.shape[0], tasks[0].theta.shape[1]
    for task in tasks:
        if len(task.y) < 2:
            raise ConfigurationError(
                f"subset {task.name!r} has {len(task.y)} observation(s); the support/query split of MAML needs at least 2 "
                "(raise bohb.trials_per_subset)"
            )
        if task.meta.shape != (meta_dim,) or task.theta.shape != (len(task.y), hp_dim):
            raise ConfigurationError(f"subset {task.name!r}: meta feature {task.meta.shape} / configs {task.theta.shape} differ from the first subset's ({meta_dim},) / (K, {hp_dim})")
        if not (np.all(np.isfinite(task.y)) and np.all(np.isfinite(task.meta)) and np.all(np.isfinite(task.theta))):
            raise ConfigurationError(f"subset {task.name!r} has a non-finite meta feature, config or observation")


def fit_maml(tasks: Sequence[Task], config: MAMLConfig, init: FittedLearner | None = None, progress: bool = True) -> FittedLearner:
    """Algorithm 1: train the hp-learner on ``tasks`` with ``config.steps`` outer steps.

    ``init`` continues a fitted learner (its network, parameters and transforms; the out-of-sample
    update), otherwise the network is initialised from ``config.seed``.
    """
    check_tasks(tasks)
    rng = np.random.default_rng(config.seed)
    if init is None:
        scaler = Scaler.fit(tasks)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = HPLearner(tasks[0].meta.shape[0], tasks[0].theta.shape[1], config.hidden, config.meta_latent, config.hp_latent, config.activation)
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
    else:
        model, scaler, params = init.model, init.scaler, {k: v.clone() for k, v in init.params.items()}
    losses = list(init.losses) if init is not None else []
    per_step = min(int(config.tasks_per_step), len(tasks))
    for _ in tqdm(range(int(config.steps)), desc="MAML hp-learner", disable=not progress, leave=False):
        chosen = rng.choice(len(tasks), size=per_step, replace=False)
        support, query = split_batch([tasks[i] for i in chosen], scaler, config.support_fraction, rng)
        params, value = outer_step(model, params, support, query, config.alpha, config.beta, config.inner_steps)
        losses.append(value)
    return FittedLearner(model, params, scaler, config, losses)


def load_learner(state: dict) -> FittedLearner:
    """Rebuild a learner from :meth:`FittedLearner.state_dict` (``torch.load(weights_only=True)``)."""
    import json

    meta = json.loads(state["meta"])
    config = MAMLConfig(**meta["config"])
    model = HPLearner(meta["meta_dim"], meta["hp_dim"], config.hidden, config.meta_latent, config.hp_latent, config.activation)
    own = dict(model.named_parameters())
    if set(own) != set(state["params"]) or any(own[k].shape != state["params"][k].shape for k in own):
        raise ConfigurationError("hp-learner state does not match its network (sizes or keys differ)")
    return FittedLearner(model, dict(state["params"]), Scaler.from_dict(meta["scaler"]), config)
