"""Train one target model on one task with one config and seed: a *trial*.

A trial trains for ``epochs`` epochs and records, per epoch, the training loss and accuracy
(running averages over the epoch's batches), the validation loss and accuracy (for regression:
the validation RMSE in the target's units and R^2), and the wall time of the epoch.

Design choices:
- the whole task lives on the device as two tensors and batches are index slices of them: the
  tasks are small subsets, and a DataLoader's per-batch Python overhead would dominate a GPU;
- determinism: the seed fixes weight initialisation, dropout masks and the batch order (its own
  ``torch.Generator``); on CUDA cuDNN is put in deterministic mode unless ``deterministic=False``;
- CUDA runs under autocast (bfloat16 where supported, else float16 with a GradScaler);
- divergence: at the end of each epoch (one device sync per epoch, not per batch) a non-finite
  training or validation loss marks the trial failed; the epochs before it are kept and the
  caller goes on with the next trial;
- resumable: a :class:`TrainingRun` holds everything one epoch changes (weights, optimizer,
  scheduler, grad scaler, the batch-order generator and the global RNG states) and gives it as
  a state dict of tensors and plain values (``torch.load(weights_only=True)`` reads it back),
  so training E epochs straight or k epochs, a checkpoint, then E - k more gives the same
  numbers on CPU. :func:`train_trial` is a loop over one run's epochs.

Kedro-free; imports only torch and numpy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from transfertune.errors import ConfigurationError
from transfertune.training.models import build_model, get_model_spec, resolve_settings

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass
class TaskData:
    """The arrays of one task, already split and normalised.

    Attributes:
        name: task name (catalog ``task`` column).
        X_train: ``(N_train, C, H, W)`` images or ``(N_train, F)`` table rows, float32.
        y_train: ``(N_train,)`` int64 class labels ``0..k-1`` or float32 regression targets.
        X_val: ``(N_val, ...)`` like ``X_train``.
        y_val: ``(N_val,)`` like ``y_train``.
        task_type: ``classification`` or ``regression``.
        n_classes: class count (1 for regression).
        meta: free-form description (source, classes, split), written beside the catalog.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task_type: str = CLASSIFICATION
    n_classes: int = 2
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in (CLASSIFICATION, REGRESSION):
            raise ConfigurationError(f"task {self.name!r}: task_type must be classification or regression, got {self.task_type!r}")
        if len(self.X_train) != len(self.y_train) or len(self.X_val) != len(self.y_val):
            raise ConfigurationError(f"task {self.name!r}: X and y lengths differ")
        if len(self.X_train) < 2 or len(self.X_val) < 1:
            raise ConfigurationError(
                f"task {self.name!r}: needs at least 2 training and 1 validation samples, "
                f"got {len(self.X_train)} and {len(self.X_val)}; use a larger subset"
            )
        if self.X_train.shape[1:] != self.X_val.shape[1:]:
            raise ConfigurationError(f"task {self.name!r}: train and validation inputs have different shapes")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.X_train.shape[1:])

    @property
    def n_outputs(self) -> int:
        return 1 if self.task_type == REGRESSION else int(self.n_classes)

    def fingerprint(self) -> str:
        """Hash of the arrays and task type: a rerun reuses a trial only on identical data."""
        import hashlib

        h = hashlib.blake2b(digest_size=8)
        h.update(f"{self.task_type}|{self.n_classes}|{self.X_train.shape}|{self.X_val.shape}".encode())
        for a in (self.X_train, self.y_train, self.X_val, self.y_val):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


@dataclass
class TrialResult:
    """What one trial produced.

    Attributes:
        status: ``completed`` or ``failed`` (non-finite loss).
        records: one dict per good epoch: ``epoch`` (1-based) and the metric columns.
        last_good_epoch: the last epoch with finite losses (0 if none).
        failed_epoch: the epoch whose loss was not finite (None when completed).
        reason: why it failed ("" when completed).
        initial: validation/training metrics of the untrained model, only filled for a trial
            that fails in its first epoch (so a catalog can still pad it; see store.py).
        device: where it ran; ``wall_time_s``: total seconds; ``n_parameters``: model size.
    """

    status: str
    records: list[dict[str, float]]
    last_good_epoch: int
    failed_epoch: int | None = None
    reason: str = ""
    initial: dict[str, float] | None = None
    device: str = "cpu"
    wall_time_s: float = 0.0
    n_parameters: int = 0


def metric_names(task_type: str) -> list[str]:
    """Metric columns a trial records for ``task_type`` (besides ``epoch``)."""
    if task_type == REGRESSION:
        return ["train_loss", "val_loss", "val_rmse", "val_r2", "epoch_time_s"]
    return ["train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s"]


def train_trial(
    model_name: str,
    config: Mapping[str, Any],
    data: TaskData,
    epochs: int,
    seed: int,
    device: str | torch.device = "auto",
    amp: bool | str = "auto",
    fixed: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    deterministic: bool = True,
    eval_batch_size: int = 1024,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrialResult:
    """Train ``model_name`` with ``config`` on ``data`` for ``epochs`` epochs.

    Args:
        model_name: a key of :data:`transfertune.training.models.MODELS`.
        config: hyperparameter values of the model's space.
        data: the task's arrays.
        epochs: number of epochs (>= 1).
        seed: fixes initialisation, dropout and batch order.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``, or a torch.device.
        amp: mixed precision on CUDA (``auto`` = on for CUDA, never on CPU).
        fixed: settings the space does not tune, overriding the model defaults.
        options: model options (``depth`` for the ResNet, ``hidden`` for the Meta-HPO CNN).
        deterministic: cuDNN deterministic mode on CUDA (slightly slower).
        eval_batch_size: batch size for evaluation passes.
        on_epoch: called with each epoch's record (progress, tests).

    Returns:
        A :class:`TrialResult`; a non-finite loss gives ``status="failed"`` (no exception).
    """
    if int(epochs) < 1:
        raise ConfigurationError(f"epochs must be >= 1, got {epochs}")
    start = time.perf_counter()
    run = TrainingRun(model_name, config, data, seed, device, amp, fixed, options, deterministic, eval_batch_size)
    records: list[dict[str, float]] = []
    status, failed_epoch, reason = "completed", None, ""
    for _ in range(int(epochs)):
        record = run.train_epoch()
        reason = divergence(record)
        if reason:
            status, failed_epoch = "failed", run.epoch
            break
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)

    initial = run.initial_metrics() if status == "failed" and not records else None
    return TrialResult(
        status=status,
        records=records,
        last_good_epoch=len(records),
        failed_epoch=failed_epoch,
        reason=reason,
        initial=initial,
        device=str(run.device),
        wall_time_s=time.perf_counter() - start,
        n_parameters=run.n_parameters,
    )


def divergence(record: Mapping[str, float]) -> str:
    """Why an epoch's record means the run diverged ("" when its losses are finite)."""
    train_loss, val_loss = record["train_loss"], record["val_loss"]
    if math.isfinite(train_loss) and math.isfinite(val_loss):
        return ""
    return f"non-finite loss at epoch {int(record['epoch'])} (train_loss={train_loss}, val_loss={val_loss})"


class TrainingRun:
    """One trial's training, an epoch at a time, with its whole state as a state dict.

    Construction seeds the global torch RNG with ``seed`` and builds the model (so the initial
    weights are the seed's), the optimizer, scheduler and, for float16 autocast, a GradScaler;
    batch order comes from its own generator seeded with ``seed``. Arguments as in
    :func:`train_trial`.

    ``state_dict()`` -> ``{"epoch", "model", "optimizer", "scheduler", "scaler", "order_rng",
    "cpu_rng", "cuda_rng"}``; ``load_state_dict`` restores it (weights, optimizer moments,
    schedule position, batch order and dropout RNG), so the next :meth:`train_epoch` gives what
    an uninterrupted run would have given.
    """

    def __init__(
        self,
        model_name: str,
        config: Mapping[str, Any],
        data: TaskData,
        seed: int,
        device: str | torch.device = "auto",
        amp: bool | str = "auto",
        fixed: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        deterministic: bool = True,
        eval_batch_size: int = 1024,
    ) -> None:
        from transfertune.core.device import pick_device

        spec = get_model_spec(model_name)
        if spec.inputs == "image" and len(data.input_shape) != 3:
            raise ConfigurationError(
                f"model '{model_name}' needs image tasks (N, C, H, W); task {data.name!r} has inputs {data.input_shape}; use model 'mlp'"
            )
        dev = device if isinstance(device, torch.device) else pick_device(str(device))
        self.device = dev
        self.model_name, self.config, self.data, self.seed = model_name, dict(config), data, int(seed)
        self.fixed, self.options, self.eval_batch_size = fixed, options, int(eval_batch_size)
        settings = resolve_settings(spec, config, fixed)
        self.use_amp = dev.type == "cuda" and (amp is True or str(amp).lower() in ("auto", "true", "1"))
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        if dev.type == "cuda":
            torch.backends.cudnn.deterministic = bool(deterministic)
            torch.backends.cudnn.benchmark = not deterministic

        torch.manual_seed(self.seed)  # weight init and dropout masks (all devices)
        self.order = torch.Generator().manual_seed(self.seed)  # batch order, independent of the model's RNG use
        self.model = build_model(model_name, config, data.input_shape, data.n_outputs, options, fixed).to(dev)
        self.optimizer = spec.optimizer(settings, self.model.parameters())
        self.scheduler = spec.scheduler(settings, self.optimizer)
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp and self.amp_dtype == torch.float16 else None
        self.tensors = _to_device(data, dev)
        self.n_train = self.tensors["X_train"].shape[0]
        self.y_std = float(self.tensors["y_std"].item()) if "y_std" in self.tensors else 1.0
        self.batch_size = max(1, min(int(settings.get("batch_size", 64)), self.n_train))
        self.regression = data.task_type == REGRESSION
        self.epoch = 0

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def train_epoch(self) -> dict[str, float]:
        """Train one more epoch; its record: ``epoch`` and the metrics of :func:`metric_names`.

        A non-finite loss is not checked here (see :func:`divergence`).
        """
        t0 = time.perf_counter()
        model, optimizer, dev, tensors = self.model, self.optimizer, self.device, self.tensors
        model.train()
        perm = torch.randperm(self.n_train, generator=self.order).to(dev)
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        seen = 0
        for b in range(0, self.n_train, self.batch_size):
            idx = perm[b : b + self.batch_size]
            if idx.numel() < 2 and self.n_train > 1:
                continue  # a 1-sample batch breaks batch norm; at most one such batch per epoch
            xb, yb = tensors["X_train"][idx], tensors["y_train"][idx]
            with torch.autocast(device_type=dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
                out = model(xb)
                loss = _loss(out, yb, self.regression)
            optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach().double() * idx.numel()
            if not self.regression:
                correct += (out.detach().argmax(1) == yb).sum()
            seen += idx.numel()
        if self.scheduler is not None:
            self.scheduler.step()
        self.epoch += 1
        train_loss = float(loss_sum.item()) / max(seen, 1)
        val = _evaluate(model, tensors["X_val"], tensors["y_val"], self.regression, self.eval_batch_size, self.use_amp, self.amp_dtype, self.y_std)
        record = {"epoch": self.epoch, "train_loss": train_loss}
        if not self.regression:
            record["train_acc"] = float(correct.item()) / max(seen, 1)
        record.update(val)
        record["epoch_time_s"] = time.perf_counter() - t0
        return record

    def initial_metrics(self) -> dict[str, float]:
        """Metrics of the untrained model (same seed, so the same initial weights as the run)."""
        return _initial_metrics(
            self.model_name, self.config, self.data, self.seed, self.device, self.options, self.fixed, self.eval_batch_size, self.tensors
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything the next epoch depends on, as tensors and plain values."""
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "order_rng": self.order.get_state(),
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a run with the same model, config, data and seed."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.order.set_state(state["order_rng"].cpu())
        torch.set_rng_state(state["cpu_rng"].cpu())
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.epoch = int(state["epoch"])


# ---------------------------------------------------------------------- internals


def _to_device(data: TaskData, dev: torch.device) -> dict[str, torch.Tensor]:
    regression = data.task_type == REGRESSION
    y_dtype = torch.float32 if regression else torch.int64
    out = {
        "X_train": torch.as_tensor(np.asarray(data.X_train, dtype=np.float32)).to(dev, non_blocking=True),
        "X_val": torch.as_tensor(np.asarray(data.X_val, dtype=np.float32)).to(dev, non_blocking=True),
        "y_train": torch.as_tensor(np.asarray(data.y_train)).to(dev, dtype=y_dtype),
        "y_val": torch.as_tensor(np.asarray(data.y_val)).to(dev, dtype=y_dtype),
    }
    if regression:
        # Train on standardised targets so one learning-rate range fits any target scale;
        # RMSE is reported back in the target's own units.
        mean, std = out["y_train"].mean(), out["y_train"].std().clamp_min(1e-8)
        out["y_mean"], out["y_std"] = mean, std
        out["y_train"] = (out["y_train"] - mean) / std
        out["y_val"] = (out["y_val"] - mean) / std
    return out


def _loss(out: torch.Tensor, y: torch.Tensor, regression: bool) -> torch.Tensor:
    if regression:
        return F.mse_loss(out.float().squeeze(1), y)
    return F.cross_entropy(out.float(), y)


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    regression: bool,
    batch_size: int,
    use_amp: bool,
    amp_dtype: torch.dtype,
    y_std: float = 1.0,
    prefix: str = "val",
) -> dict[str, float]:
    model.eval()
    n = X.shape[0]
    loss_sum = torch.zeros((), device=X.device, dtype=torch.float64)
    correct = torch.zeros((), device=X.device, dtype=torch.int64)
    for b in range(0, n, batch_size):
        xb, yb = X[b : b + batch_size], y[b : b + batch_size]
        with torch.autocast(device_type=X.device.type, dtype=amp_dtype, enabled=use_amp):
            out = model(xb)
        if regression:
            loss_sum += F.mse_loss(out.float().squeeze(1), yb, reduction="sum").double()
        else:
            loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").double()
            correct += (out.argmax(1) == yb).sum()
    mse = float(loss_sum.item()) / n
    if regression:
        # mse is on the standardised scale: R^2 is scale-free, RMSE goes back to target units.
        var = float(y.double().var(unbiased=False).item()) if n > 1 else 0.0
        r2 = 1.0 - mse / var if var > 0 else 0.0
        rmse = math.sqrt(mse) * y_std if math.isfinite(mse) else mse
        return {f"{prefix}_loss": mse, f"{prefix}_rmse": rmse, f"{prefix}_r2": r2}
    return {f"{prefix}_loss": mse, f"{prefix}_acc": float(correct.item()) / n}


def _initial_metrics(
    model_name: str,
    config: Mapping[str, Any],
    data: TaskData,
    seed: int,
    dev: torch.device,
    options: Mapping[str, Any] | None,
    fixed: Mapping[str, Any] | None,
    eval_batch_size: int,
    tensors: dict[str, torch.Tensor],
) -> dict[str, float]:
    """Metrics of the untrained model (same seed, so the same initial weights as the trial)."""
    torch.manual_seed(int(seed))
    model = build_model(model_name, config, data.input_shape, data.n_outputs, options, fixed).to(dev)
    regression = data.task_type == REGRESSION
    y_std = float(tensors["y_std"].item()) if "y_std" in tensors else 1.0
    out = _evaluate(model, tensors["X_val"], tensors["y_val"], regression, eval_batch_size, False, torch.float32, y_std)
    train = _evaluate(model, tensors["X_train"], tensors["y_train"], regression, eval_batch_size, False, torch.float32, y_std, "train")
    out["train_loss"] = train["train_loss"]
    if not regression:
        out["train_acc"] = train["train_acc"]
    return out
