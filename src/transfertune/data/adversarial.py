"""Perturbation-aware adversarial scoring (Meta-HPO, seed 003, section 3.2).

For every sample ``x`` we look for the smallest perturbation ``eps`` (``x + eps`` kept inside the
data box) that changes the model's decision, by minimising Eq. 5::

    lambda1 * ||W . eps||_2^2 + lambda2 * g(x, eps)

with ``g`` of Eq. 3 (classification, targeted hinge on class scores with strength ``c``) or Eq. 4
(regression, the prediction must move by at least ``sigma``), ``W`` a per-dimension weight learned
from the data, and ``(lambda1, lambda2)`` chosen at every step, per sample, by the two-task
min-norm solver of Sener & Koltun (2018) instead of C&W's binary search over the constant.
The norm ``||W . eps||_2`` of the smallest successful perturbation is the sample's distance to
the decision boundary; samplers take the closest samples.

How the min-norm weights drive the search (the paper leaves this open; see
docs/stages/subsample.md): the two objectives are "stay small" (``L1 = ||W.eps||^2``) and
"cross the boundary" (``L2 = g``). Per sample and per step, only the objectives that are still
*active* enter the min-norm problem:

* ``g > 0`` (not yet across): only ``L2`` is active, ``lambda = (0, 1)``. The min-norm element
  of both would be the zero vector at ``eps = 0`` (the clean sample is Pareto-optimal), so the
  search could never start;
* ``-c < g <= 0`` (across, inside the margin band): both are active, ``lambda = (alpha, 1-alpha)``
  from the closed form; the step decreases both objectives, so it slides along the boundary
  towards smaller perturbations and stops where the two gradients are opposed, which is the
  KKT point of ``min ||W.eps||^2 s.t. g <= const`` with ``alpha`` its multiplier;
* ``g <= -c`` (the hinge is flat, the constraint is satisfied with margin): only ``L1`` is
  active, ``lambda = (1, 0)``, the perturbation shrinks back towards the band.

Every iterate is checked and the smallest successful one is kept (as C&W does), so the result
never depends on where the search happens to stop.

The probe is kept: :func:`save_probe` / :func:`load_probe` write and read its state dict (Meta-HPO
computes its meta features with the probe's penultimate layer, :func:`probe_features`), and
:func:`update_probe` trains it further between sampling rounds.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from transfertune.data.sources import ArraySource
from transfertune.errors import ConfigurationError

# ====================================================================== min-norm solver
def min_norm_two(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Closed-form two-task min-norm weights (Sener & Koltun 2018, Algorithm 1), batched.

    Solves ``min_{a in [0,1]} ||a * g1 + (1 - a) * g2||^2`` row by row.

    Args:
        g1, g2: ``(B, D)`` gradients of the two objectives.

    Returns:
        ``(B,)`` weights ``a`` of ``g1`` (``1 - a`` is the weight of ``g2``). Where ``g1 == g2``
        every ``a`` is optimal and 0.5 is returned.
    """
    v11 = (g1 * g1).sum(dim=1)
    v12 = (g1 * g2).sum(dim=1)
    v22 = (g2 * g2).sum(dim=1)
    denom = v11 + v22 - 2.0 * v12  # = ||g1 - g2||^2 >= 0
    safe = denom > 1e-20 * torch.clamp(v11 + v22, min=1e-30)
    alpha = torch.where(safe, (v22 - v12) / torch.where(safe, denom, torch.ones_like(denom)), torch.full_like(denom, 0.5))
    return alpha.clamp(0.0, 1.0)


def min_norm_frank_wolfe(grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-6) -> torch.Tensor:
    """Min-norm element of the convex hull of T gradients by Frank-Wolfe (Sener & Koltun, Alg. 2).

    Solves ``min_{a in simplex} ||sum_t a_t grads[:, t]||^2`` for every row of the batch; each
    step moves towards the vertex with the smallest inner product and takes the exact line search
    of :func:`min_norm_two`. For ``T = 2`` use :func:`min_norm_two` directly (one closed form).

    Args:
        grads: ``(B, T, D)``.
        max_iter: Frank-Wolfe iterations.
        tol: stop when no weight moves by more than ``tol``.

    Returns:
        ``(B, T)`` weights on the simplex.
    """
    B, T, _ = grads.shape
    if T == 1:
        return torch.ones(B, 1, dtype=grads.dtype, device=grads.device)
    gram = grads @ grads.transpose(1, 2)  # (B, T, T)
    alpha = torch.full((B, T), 1.0 / T, dtype=grads.dtype, device=grads.device)
    rows = torch.arange(B, device=grads.device)
    for _ in range(max_iter):
        m_alpha = (gram @ alpha.unsqueeze(2)).squeeze(2)  # (B, T): <g_t, v> with v = sum a_t g_t
        t_hat = m_alpha.argmin(dim=1)
        # line search between v (current point) and g_t_hat: two-point min-norm on inner products
        v_v = (alpha * m_alpha).sum(dim=1)
        v_g = m_alpha[rows, t_hat]
        g_g = gram[rows, t_hat, t_hat]
        denom = v_v + g_g - 2.0 * v_g
        safe = denom > 1e-20
        gamma = torch.where(safe, (g_g - v_g) / torch.where(safe, denom, torch.ones_like(denom)), torch.ones_like(denom))
        gamma = gamma.clamp(0.0, 1.0)  # weight kept on the current point
        new = alpha * gamma.unsqueeze(1)
        new[rows, t_hat] += 1.0 - gamma
        change = (new - alpha).abs().max()
        alpha = new
        if change < tol:
            break
    return alpha


# ====================================================================== models
class MLP(nn.Module):
    """Two hidden ReLU layers on flattened input: ``(B, *sample_shape) -> (B, n_out)``."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv layers, pooled to 4x4, then an MLP head: ``(B, C, H, W) -> (B, n_out)``.

    The adaptive pool keeps the head's size fixed from 8x8 digits to 96x96 STL10.
    """

    def __init__(self, channels: int, n_out: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class ClassifierConfig:
    """How the model that the attack probes is trained on the full source."""

    model: Literal["auto", "mlp", "cnn"] = "auto"
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in ("auto", "mlp", "cnn"):
            raise ConfigurationError(f"classifier.model must be auto, mlp or cnn, got {self.model!r}")
        for name in ("hidden", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(f"classifier.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigurationError(f"classifier.lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")


@dataclass
class TrainedModel:
    """A model trained on a full source, with what the attack needs to read its outputs.

    Attributes:
        net: the network in eval mode, on ``device``; input ``(B, *sample_shape)``.
        task_type: classification (outputs are logits) or regression (one standardised output).
        n_classes: number of logits (1 for regression).
        y_mean, y_std: the regression target's standardisation (0, 1 for classification).
        train_metric: accuracy (classification) or R^2 (regression) on the full set.
    """

    net: nn.Module
    task_type: str
    n_classes: int
    device: torch.device
    y_mean: float = 0.0
    y_std: float = 1.0
    train_metric: float = float("nan")
    seconds: float = 0.0


def build_model(source: ArraySource, config: ClassifierConfig) -> nn.Module:
    """The network for ``source``: a CNN for images (``auto``), an MLP otherwise."""
    n_out = source.n_classes if source.task_type == "classification" else 1
    return build_probe(source.sample_shape, n_out, config, source.name)


def build_probe(sample_shape: tuple[int, ...], n_out: int, config: ClassifierConfig, name: str = "source") -> nn.Module:
    """The probe network for samples of ``sample_shape`` (``(C, H, W)``: images) and ``n_out`` outputs."""
    is_image = len(sample_shape) == 3
    kind = config.model
    if kind == "auto":
        kind = "cnn" if is_image else "mlp"
    if kind == "cnn":
        if not is_image:
            raise ConfigurationError(f"classifier.model 'cnn' needs images, source {name!r} is a table")
        return SmallCNN(sample_shape[0], n_out, config.hidden)
    return MLP(int(np.prod(sample_shape)), n_out, config.hidden)


def _targets(source: ArraySource, device: torch.device, y_mean: float | None = None, y_std: float | None = None) -> tuple[torch.Tensor, float, float, nn.Module]:
    """Training targets of the probe: class indices, or the regression target standardised
    (with the given mean and std, else the source's own)."""
    if source.task_type == "classification":
        return torch.as_tensor(source.y, dtype=torch.long, device=device), 0.0, 1.0, nn.CrossEntropyLoss()
    raw = source.y.astype(np.float64)
    if y_mean is None or y_std is None:
        y_mean, y_std = float(raw.mean()), float(raw.std() or 1.0)
    y = torch.as_tensor((raw - y_mean) / y_std, dtype=torch.float32, device=device).unsqueeze(1)
    return y, float(y_mean), float(y_std), nn.MSELoss()


def _fit(net: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, config: ClassifierConfig, epochs: int, seed: int, desc: str, progress: bool) -> None:
    """``epochs`` epochs of Adam on ``(X, y)``, batch order from ``seed`` (a fresh optimizer)."""
    shuffle = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(X)
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(n, generator=shuffle).to(X.device)
        for b in range(0, n, config.batch_size):
            idx = order[b : b + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)


def _fit_metric(net: nn.Module, X: torch.Tensor, y: torch.Tensor, task_type: str) -> float:
    """Accuracy (classification) or R^2 (regression, standardised targets) of ``net`` on ``(X, y)``."""
    with torch.no_grad():
        out = torch.cat([net(X[b : b + 4096]) for b in range(0, len(X), 4096)])
        if task_type == "classification":
            return float((out.argmax(1) == y).float().mean())
        return float(1.0 - ((out - y) ** 2).mean() / y.var(unbiased=False).clamp(min=1e-12))


def train_model(source: ArraySource, config: ClassifierConfig, device: torch.device, seed: int, progress: bool = True) -> TrainedModel:
    """Train the probe model on the whole source with Adam (cross-entropy or MSE), seeded.

    Regression targets are standardised for training; outputs stay in standardised units, so
    the attack's ``sigma`` is in target standard deviations.
    """
    if source.task_type == "classification" and source.n_classes < 2:
        raise ConfigurationError(f"source {source.name!r} has {source.n_classes} class(es); a classifier needs at least 2")
    start = time.perf_counter()
    X = torch.as_tensor(source.X, dtype=torch.float32, device=device)
    y, y_mean, y_std, loss_fn = _targets(source, device)
    # forked RNG: seeding the model init must not reseed the caller's global torch stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(source, config).to(device)
        _fit(net, X, y, loss_fn, config, config.epochs, seed, f"train probe on {source.name}", progress)
    metric = _fit_metric(net, X, y, source.task_type)
    n_out = source.n_classes if source.task_type == "classification" else 1
    return TrainedModel(net, source.task_type, n_out, device, y_mean, y_std, metric, time.perf_counter() - start)


def update_probe(model: TrainedModel, source: ArraySource, config: ClassifierConfig, epochs: int, seed: int, progress: bool = True) -> TrainedModel:
    """Train the probe ``epochs`` more epochs on ``source`` (Adam restarted, batch order from
    ``seed``), in place: its decision boundary moves, so a new scoring ranks other samples first.
    Returns the same model with ``train_metric`` and ``seconds`` (of this update) refreshed."""
    if int(epochs) < 0:
        raise ConfigurationError(f"probe update epochs must be >= 0, got {epochs!r}")
    start = time.perf_counter()
    X = torch.as_tensor(source.X, dtype=torch.float32, device=model.device)
    y, _, _, loss_fn = _targets(source, model.device, model.y_mean, model.y_std)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout-free nets, but keep the caller's stream untouched anyway
        _fit(model.net, X, y, loss_fn, config, int(epochs), seed, f"update probe on {source.name}", progress)
    model.train_metric = _fit_metric(model.net, X, y, model.task_type)
    model.seconds = time.perf_counter() - start
    return model


def probe_features(model: TrainedModel | nn.Module, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """``phi_e(X)``: the probe's penultimate activations (the input of its last linear layer).

    Args:
        model: a probe built by :func:`build_probe` (its ``net`` ends with the output ``Linear``).
        X: ``(N, *sample_shape)`` samples, as the probe was trained on them.

    Returns:
        ``(N, hidden)`` float64.
    """
    net = model.net if isinstance(model, TrainedModel) else model
    body = net.net[:-1]
    device = next(net.parameters()).device
    with torch.no_grad():
        parts = [body(torch.as_tensor(X[b : b + batch_size], dtype=torch.float32, device=device)).double().cpu() for b in range(0, len(X), batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, net.net[-1].in_features))


def save_probe(path: str | Path, model: TrainedModel, config: ClassifierConfig, sample_shape: tuple[int, ...]) -> Path:
    """Write the probe as a ``torch.save`` of its state dict plus a JSON description, atomically
    (temporary file, fsync, ``os.replace``); :func:`load_probe` reads it with ``weights_only``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task_type": model.task_type, "n_classes": int(model.n_classes), "sample_shape": [int(s) for s in sample_shape],
            "classifier": asdict(config), "y_mean": model.y_mean, "y_std": model.y_std, "train_metric": model.train_metric}
    buffer = io.BytesIO()
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()}, "meta": json.dumps(meta)}, buffer)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_probe(path: str | Path, device: torch.device | str = "cpu", sample_shape: tuple[int, ...] | None = None) -> tuple[TrainedModel, ClassifierConfig]:
    """Read a probe written by :func:`save_probe` and rebuild its network on ``device``.

    Args:
        sample_shape: when given, the shape the caller will feed; a probe built for another
            shape is refused.

    Raises:
        ConfigurationError: a missing file, or a state dict that does not fit the network its
            description builds (or ``sample_shape``), in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"probe file {path} does not exist")
    saved: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    meta = json.loads(saved["meta"])
    config = ClassifierConfig(**meta["classifier"])
    shape = tuple(int(s) for s in (sample_shape if sample_shape is not None else meta["sample_shape"]))
    net = build_probe(shape, int(meta["n_classes"]), config)
    check_probe_state(net, saved["state_dict"], f"probe {path}")
    net.load_state_dict(saved["state_dict"])
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    model = TrainedModel(net, meta["task_type"], int(meta["n_classes"]), torch.device(device), float(meta["y_mean"]), float(meta["y_std"]), float(meta["train_metric"]))
    return model, config


def check_probe_state(net: nn.Module, state: dict[str, torch.Tensor], where: str = "probe") -> None:
    """One-line :class:`ConfigurationError` when ``state`` does not fit ``net`` (missing or
    unexpected keys, or a tensor of another shape)."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {unexpected[:3]}"] if unexpected else []) + shapes[:2]
        raise ConfigurationError(f"{where}: the state dict does not match the probe network {type(net).__name__}: " + "; ".join(parts))


# ====================================================================== perturbation weights
def perturbation_weights(X: np.ndarray, mode: Literal["data", "uniform"] = "data", floor: float = 0.1) -> np.ndarray:
    """Per-dimension weights ``W`` of Eq. 5, shape ``(D,)`` for ``X`` of shape ``(N, *sample_shape)``.

    ``data``: ``W_d = median_s / max(s_d, floor * median_s)`` with ``s_d`` the spread (standard
    deviation) of dimension ``d`` over the full set, i.e. the maximum-likelihood precision of a
    diagonal Gaussian fitted to the data, rescaled so a typical dimension weighs 1. Moving a
    dimension that barely varies in the data (digit borders) costs more than moving one that
    varies a lot; ``floor`` caps the weight at ``1 / floor``. ``uniform``: all ones (plain L2).
    """
    flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    if mode == "uniform":
        return np.ones(flat.shape[1], dtype=np.float32)
    if mode != "data":
        raise ConfigurationError(f"attack.weights must be 'data' or 'uniform', got {mode!r}")
    if not 0 < floor <= 1:
        raise ConfigurationError(f"attack.weight_floor must be in (0, 1], got {floor!r}")
    spread = flat.std(axis=0)
    positive = spread[spread > 0]
    if positive.size == 0:
        return np.ones(flat.shape[1], dtype=np.float32)
    med = float(np.median(positive))
    return (med / np.maximum(spread, floor * med)).astype(np.float32)


def data_box(source: ArraySource) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds ``(D,)`` for ``x + eps``: the source's ``data_range`` when it has
    one (images: ``[0, 1]``), else each feature's observed ``[min, max]`` over the full set."""
    flat = source.X.reshape(len(source), -1)
    if source.data_range is not None:
        lo, hi = source.data_range
        return np.full(flat.shape[1], lo, dtype=np.float32), np.full(flat.shape[1], hi, dtype=np.float32)
    return flat.min(axis=0).astype(np.float32), flat.max(axis=0).astype(np.float32)


# ====================================================================== attack
@dataclass
class AttackConfig:
    """Knobs of the C&W-style search (Eq. 3-5).

    Attributes:
        iterations: optimisation steps per batch.
        lr: Adam step size for ``eps``, in data units (images: [0, 1]; tables: standard deviations),
            decayed by a cosine to ``lr_final_fraction * lr``.
        batch_size: samples attacked together on the device.
        c: strength constant of Eq. 3/4, the margin at which the hinge goes flat.
        sigma: Eq. 4 threshold, in standard deviations of the regression target.
        scores: ``Z`` of Eq. 3: ``probabilities`` (softmax, as the paper writes) or ``logits``.
        target: ``runner_up`` attacks towards the second most likely class at ``x``; ``all``
            attacks every other class and keeps the smallest successful perturbation.
        weights: ``data`` (learned per-dimension ``W``) or ``uniform``.
        weight_floor: see :func:`perturbation_weights`.
        init_noise: std of the random start of ``eps`` (the |.| of Eq. 4 has no gradient at 0).
        seed: seeds the random start.
        weighting: ``min_norm`` (the Frank-Wolfe / Sener-Koltun weights, the method) or
            ``fixed`` (one constant pair ``fixed_lambda`` for every sample and step: C&W without
            its binary search, kept as the ablation the benchmark compares against).
        fixed_lambda: ``(lambda1, lambda2)`` for ``weighting: fixed``.
    """

    iterations: int = 100
    lr: float = 0.01
    lr_final_fraction: float = 0.1
    batch_size: int = 1024
    c: float = 0.1
    sigma: float = 0.5
    scores: Literal["probabilities", "logits"] = "probabilities"
    target: Literal["runner_up", "all"] = "runner_up"
    weights: Literal["data", "uniform"] = "data"
    weight_floor: float = 0.1
    init_noise: float = 1e-3
    seed: int = 0
    weighting: Literal["min_norm", "fixed"] = "min_norm"
    fixed_lambda: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if int(self.iterations) < 1 or int(self.batch_size) < 1:
            raise ConfigurationError(f"attack.iterations and attack.batch_size must be >= 1, got {self.iterations}, {self.batch_size}")
        if not self.lr > 0 or not 0 < self.lr_final_fraction <= 1:
            raise ConfigurationError(f"attack.lr must be > 0 and lr_final_fraction in (0, 1], got {self.lr}, {self.lr_final_fraction}")
        if not self.c > 0:
            raise ConfigurationError(f"attack.c must be > 0 (the hinge margin of Eq. 3/4), got {self.c!r}")
        if not self.sigma > 0:
            raise ConfigurationError(f"attack.sigma must be > 0 (the Eq. 4 threshold), got {self.sigma!r}")
        if self.scores not in ("probabilities", "logits"):
            raise ConfigurationError(f"attack.scores must be probabilities or logits, got {self.scores!r}")
        if self.target not in ("runner_up", "all"):
            raise ConfigurationError(f"attack.target must be runner_up or all, got {self.target!r}")
        if self.init_noise < 0:
            raise ConfigurationError(f"attack.init_noise must be >= 0, got {self.init_noise!r}")
        if self.weighting not in ("min_norm", "fixed"):
            raise ConfigurationError(f"attack.weighting must be min_norm or fixed, got {self.weighting!r}")
        lam = tuple(float(v) for v in self.fixed_lambda)
        if len(lam) != 2 or min(lam) < 0 or sum(lam) <= 0:
            raise ConfigurationError(f"attack.fixed_lambda must be two non-negative numbers, not both 0, got {self.fixed_lambda!r}")
        self.fixed_lambda = lam


@dataclass
class AttackResult:
    """Per-sample outcome of :func:`adversarial_scores`, arrays of length ``N``.

    Attributes:
        success: the decision changed (class, or regression output by >= sigma) for some iterate.
        norm: ``||W . eps||_2`` of the smallest successful perturbation; ``inf`` where none.
        l2: plain ``||eps||_2`` of that perturbation; ``inf`` where none.
        clean_prediction: class (int) or standardised prediction (float) at ``x``.
        adversarial_prediction: same at ``x + eps`` (equal to clean where no success).
        lambda1: the min-norm weight of the norm objective at the best iterate (NaN where none).
        perturbation: ``(N, *sample_shape)`` best ``eps`` (zeros where none), if requested.
        weights: ``(D,)`` the ``W`` used. lower/upper: ``(D,)`` the data box.
        seconds: wall time of the attack (without training).
    """

    success: np.ndarray
    norm: np.ndarray
    l2: np.ndarray
    clean_prediction: np.ndarray
    adversarial_prediction: np.ndarray
    lambda1: np.ndarray
    weights: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    perturbation: np.ndarray | None = None
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(self.success.mean()) if len(self.success) else float("nan")


def _scores(model: TrainedModel, x: torch.Tensor, shape: tuple[int, ...], kind: str) -> torch.Tensor:
    out = model.net(x.view(-1, *shape))
    if model.task_type == "regression":
        return out[:, 0]
    return torch.softmax(out, dim=1) if kind == "probabilities" else out


def _constraint(z: torch.Tensor, ref: torch.Tensor, task_type: str, cfg: AttackConfig) -> torch.Tensor:
    """``g(x, eps)`` of Eq. 3 (``ref``: target class per row) or Eq. 4 (``ref``: clean output)."""
    if task_type == "regression":
        return torch.clamp(cfg.sigma - (z - ref).abs(), min=-cfg.c)
    z_t = z.gather(1, ref.unsqueeze(1)).squeeze(1)
    others = z.scatter(1, ref.unsqueeze(1), float("-inf")).max(dim=1).values
    return torch.clamp(others - z_t, min=-cfg.c)


def _succeeded(z: torch.Tensor, clean: torch.Tensor, task_type: str, cfg: AttackConfig) -> torch.Tensor:
    """Eq. 2's constraint ``C(x) != C(x + eps)``; for regression, a move of at least sigma."""
    if task_type == "regression":
        return (z - clean).abs() >= cfg.sigma
    return z.argmax(dim=1) != clean


def adversarial_scores(
    model: TrainedModel,
    X: np.ndarray,
    cfg: AttackConfig,
    lower: np.ndarray,
    upper: np.ndarray,
    weights: np.ndarray,
    return_perturbations: bool = False,
    progress: bool = True,
) -> AttackResult:
    """Smallest successful perturbation of every sample, in batches on the model's device.

    Args:
        model: the trained probe (:func:`train_model`).
        X: ``(N, *sample_shape)`` float32 samples.
        cfg: attack knobs.
        lower, upper: ``(D,)`` box for ``x + eps`` (``D = prod(sample_shape)``).
        weights: ``(D,)`` the ``W`` of Eq. 5.
        return_perturbations: also return the best ``eps`` (memory ``N x D`` floats).

    Returns:
        an :class:`AttackResult`; see the module docstring for the algorithm.
    """
    start = time.perf_counter()
    device = model.device
    N = len(X)
    shape = tuple(X.shape[1:])
    D = int(np.prod(shape))
    lo = torch.as_tensor(lower, dtype=torch.float32, device=device).view(1, D)
    hi = torch.as_tensor(upper, dtype=torch.float32, device=device).view(1, D)
    W2 = torch.as_tensor(weights, dtype=torch.float32, device=device).view(1, D) ** 2
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    regression = model.task_type == "regression"
    multi = (not regression) and cfg.target == "all" and model.n_classes > 2

    success = np.zeros(N, dtype=bool)
    best_norm = np.full(N, np.inf)
    best_l2 = np.full(N, np.inf)
    lam1 = np.full(N, np.nan)
    clean_pred = np.zeros(N, dtype=np.float64 if regression else np.int64)
    adv_pred = np.zeros_like(clean_pred)
    best_eps = np.zeros((N, D), dtype=np.float32) if return_perturbations else None

    # with target 'all' every sample appears n_classes - 1 times; shrink batches to keep memory flat
    per_batch = max(1, cfg.batch_size // (model.n_classes - 1)) if multi else cfg.batch_size
    n_batches = math.ceil(N / per_batch)
    bar = tqdm(total=N, desc="adversarial scoring", unit="sample", disable=not progress, leave=False)
    for b in range(n_batches):
        sl = slice(b * per_batch, min(N, (b + 1) * per_batch))
        x0 = torch.as_tensor(X[sl], dtype=torch.float32, device=device).reshape(-1, D)
        with torch.no_grad():
            z0 = _scores(model, x0, shape, cfg.scores)
        if regression:
            clean, owner = z0, torch.arange(len(x0), device=device)
            ref = z0
        else:
            clean = z0.argmax(dim=1)
            if multi:
                # one row per (sample, target != clean class)
                K = model.n_classes
                owner = torch.arange(len(x0), device=device).repeat_interleave(K - 1)
                all_t = torch.arange(K, device=device).repeat(len(x0), 1)
                ref = all_t[all_t != clean.unsqueeze(1)].view(-1)
            else:
                owner = torch.arange(len(x0), device=device)
                ref = z0.scatter(1, clean.unsqueeze(1), float("-inf")).argmax(dim=1)  # runner-up class
        x = x0[owner]
        clean_rows = clean[owner]
        ref_rows = ref if not regression else ref[owner]
        R = len(x)
        noise = torch.randn(R, D, generator=gen).to(device) * cfg.init_noise
        eps = (torch.clamp(x + noise, lo, hi) - x).requires_grad_(True)
        opt = torch.optim.Adam([eps], lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.iterations), eta_min=cfg.lr * cfg.lr_final_fraction)
        row_best = torch.full((R,), float("inf"), device=device)
        row_l2 = torch.full((R,), float("inf"), device=device)
        row_lam = torch.full((R,), float("nan"), device=device)
        row_pred = clean_rows.clone().to(torch.float64 if regression else torch.long)
        row_eps = torch.zeros(R, D, device=device) if return_perturbations else None
        for it in range(cfg.iterations + 1):
            z = _scores(model, x + eps, shape, cfg.scores)
            g = _constraint(z, ref_rows, model.task_type, cfg)
            with torch.no_grad():
                wnorm = torch.sqrt((W2 * eps * eps).sum(dim=1))
                better = _succeeded(z, clean_rows, model.task_type, cfg) & (wnorm < row_best)
            if it == cfg.iterations:  # the last pass only checks the final iterate
                lam_now = torch.full_like(wnorm, float("nan"))
            else:
                (grad_g,) = torch.autograd.grad(g.sum(), eps)
            with torch.no_grad():
                if it < cfg.iterations:
                    grad_n = 2.0 * W2 * eps  # d/d eps of ||W . eps||^2
                    alpha = min_norm_two(grad_n, grad_g)
                    lam_now = torch.where(g > 0, torch.zeros_like(alpha), torch.where(g <= -cfg.c, torch.ones_like(alpha), alpha))
                    if cfg.weighting == "fixed":
                        lam_now = torch.full_like(alpha, cfg.fixed_lambda[0] / sum(cfg.fixed_lambda))
                row_best = torch.where(better, wnorm, row_best)
                row_l2 = torch.where(better, eps.norm(dim=1), row_l2)
                row_lam = torch.where(better, lam_now, row_lam)
                if regression:
                    row_pred = torch.where(better, z.double(), row_pred)
                else:
                    row_pred = torch.where(better, z.argmax(dim=1), row_pred)
                if row_eps is not None:
                    row_eps[better] = eps[better]
                if it == cfg.iterations:
                    break
                if cfg.weighting == "fixed":
                    eps.grad = cfg.fixed_lambda[0] * grad_n + cfg.fixed_lambda[1] * grad_g
                else:
                    lam = lam_now.unsqueeze(1)
                    eps.grad = lam * grad_n + (1.0 - lam) * grad_g
            opt.step()
            sched.step()
            with torch.no_grad():  # projection onto the data box
                eps.copy_(torch.clamp(x + eps, lo, hi) - x)
        # reduce rows to samples: rows of one sample are contiguous, keep its smallest success
        n_local = len(x0)
        per_sample = row_best.view(n_local, R // n_local)
        sample_best, pick = per_sample.min(dim=1)
        win = torch.arange(n_local, device=device) * (R // n_local) + pick
        ok = torch.isfinite(sample_best).cpu().numpy()
        idx = np.arange(sl.start, sl.stop)
        success[idx] = ok
        best_norm[idx] = np.where(ok, sample_best.cpu().numpy(), np.inf)
        best_l2[idx] = np.where(ok, row_l2[win].cpu().numpy(), np.inf)
        lam1[idx] = np.where(ok, row_lam[win].cpu().numpy(), np.nan)
        clean_pred[idx] = clean.double().cpu().numpy() if regression else clean.cpu().numpy()
        adv_pred[idx] = np.where(ok, row_pred[win].cpu().numpy(), clean_pred[idx])
        if best_eps is not None:
            best_eps[idx] = np.where(ok[:, None], row_eps[win].cpu().numpy(), 0.0)
        bar.update(n_local)
    bar.close()
    return AttackResult(
        success=success,
        norm=best_norm,
        l2=best_l2,
        clean_prediction=clean_pred,
        adversarial_prediction=adv_pred,
        lambda1=lam1,
        weights=np.asarray(weights, dtype=np.float32),
        lower=np.asarray(lower, dtype=np.float32),
        upper=np.asarray(upper, dtype=np.float32),
        perturbation=None if best_eps is None else best_eps.reshape(N, *shape),
        seconds=time.perf_counter() - start,
        config=asdict(cfg),
    )


def score_source(
    source: ArraySource,
    classifier: ClassifierConfig,
    attack: AttackConfig,
    device: torch.device,
    seed: int = 0,
    return_perturbations: bool = False,
    progress: bool = True,
) -> tuple[TrainedModel, AttackResult]:
    """Train the probe on the full source, then score every sample (distance to the boundary)."""
    model = train_model(source, classifier, device, seed, progress=progress)
    lower, upper = data_box(source)
    weights = perturbation_weights(source.X, attack.weights, attack.weight_floor)
    result = adversarial_scores(model, source.X, attack, lower, upper, weights, return_perturbations, progress)
    return model, result
