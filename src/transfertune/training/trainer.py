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
  caller goes on with the next trial.

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
    from transfertune.core.device import pick_device

    if int(epochs) < 1:
        raise ConfigurationError(f"epochs must be >= 1, got {epochs}")
    spec = get_model_spec(model_name)
    if spec.inputs == "image" and len(data.input_shape) != 3:
        raise ConfigurationError(
            f"model '{model_name}' needs image tasks (N, C, H, W); task {data.name!r} has inputs {data.input_shape}; use model 'mlp'"
        )
    dev = device if isinstance(device, torch.device) else pick_device(str(device))
    settings = resolve_settings(spec, config, fixed)
    use_amp = dev.type == "cuda" and (amp is True or str(amp).lower() in ("auto", "true", "1"))
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    if dev.type == "cuda":
        torch.backends.cudnn.deterministic = bool(deterministic)
        torch.backends.cudnn.benchmark = not deterministic

    start = time.perf_counter()
    torch.manual_seed(int(seed))  # weight init and dropout masks (all devices)
    order = torch.Generator().manual_seed(int(seed))  # batch order, independent of the model's RNG use
    model = build_model(model_name, config, data.input_shape, data.n_outputs, options, fixed).to(dev)
    optimizer = spec.optimizer(settings, model.parameters())
    scheduler = spec.scheduler(settings, optimizer)
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None

    tensors = _to_device(data, dev)
    n_train = tensors["X_train"].shape[0]
    y_std = float(tensors["y_std"].item()) if "y_std" in tensors else 1.0
    batch_size = max(1, min(int(settings.get("batch_size", 64)), n_train))
    regression = data.task_type == REGRESSION

    records: list[dict[str, float]] = []
    status, failed_epoch, reason = "completed", None, ""
    for epoch in range(1, int(epochs) + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train, generator=order).to(dev)
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        seen = 0
        for b in range(0, n_train, batch_size):
            idx = perm[b : b + batch_size]
            if idx.numel() < 2 and n_train > 1:
                continue  # a 1-sample batch breaks batch norm; at most one such batch per epoch
            xb, yb = tensors["X_train"][idx], tensors["y_train"][idx]
            with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
                out = model(xb)
                loss = _loss(out, yb, regression)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach().double() * idx.numel()
            if not regression:
                correct += (out.detach().argmax(1) == yb).sum()
            seen += idx.numel()
        if scheduler is not None:
            scheduler.step()
        train_loss = float(loss_sum.item()) / max(seen, 1)
        val = _evaluate(model, tensors["X_val"], tensors["y_val"], regression, eval_batch_size, use_amp, amp_dtype, y_std)
        record = {"epoch": epoch, "train_loss": train_loss}
        if not regression:
            record["train_acc"] = float(correct.item()) / max(seen, 1)
        record.update(val)
        record["epoch_time_s"] = time.perf_counter() - t0
        if not (math.isfinite(train_loss) and math.isfinite(val["val_loss"])):
            status, failed_epoch = "failed", epoch
            reason = f"non-finite loss at epoch {epoch} (train_loss={train_loss}, val_loss={val['val_loss']})"
            break
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)

    initial = None
    if status == "failed" and not records:
        initial = _initial_metrics(model_name, config, data, seed, dev, options, fixed, eval_batch_size, tensors)
    return TrialResult(
        status=status,
        records=records,
        last_good_epoch=len(records),
        failed_epoch=failed_epoch,
        reason=reason,
        initial=initial,
        device=str(dev),
        wall_time_s=time.perf_counter() - start,
        n_parameters=sum(p.numel() for p in model.parameters()),
    )


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
