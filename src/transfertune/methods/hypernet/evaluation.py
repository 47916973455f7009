"""The evaluation of the paper: Figure 2, Figure 3 and many hyperparameters against BO.

Each experiment returns pandas tables (what the benchmark prints and the pipeline saves) and has a
plotting function that draws the figure from those tables only. Figures are plain
``matplotlib.figure.Figure`` objects (no pyplot), so importing this module changes no backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from matplotlib.figure import Figure
from torch import Tensor

from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet.baselines import (
    bayesian_optimisation_global_l2,
    fit_gp_on_losses,
    fit_hypernet_on_pairs,
    train_at_lambda,
    train_many,
)
from transfertune.methods.hypernet.data import DataSplit
from transfertune.methods.hypernet.hyperparams import SIZES, L2Hyperparameters
from transfertune.methods.hypernet.target import LogisticRegression
from transfertune.methods.hypernet.training import (
    GlobalConfig,
    LocalConfig,
    _from_mapping,
    _positive,
    global_hypertraining,
    local_hypertraining,
)


@dataclass(frozen=True)
class Figure2Config:
    """``n_grid``: lambdas where the hypernets are evaluated; ``n_trained``: models trained."""

    n_grid: int = 100
    n_trained: int = 15

    def __post_init__(self) -> None:
        _positive("hypernet figure2", n_grid=self.n_grid, n_trained=self.n_trained)


@dataclass(frozen=True)
class Figure3Config:
    """``size``: hyperparameters compared; ``n_samples``: the GP's and pairs-hypernet's training
    runs; ``n_test``: lambdas (trained for real) where predictions are scored; ``pairs_steps`` and
    ``pairs_lr``: Adam fit of the pairs hypernet."""

    size: str = "per_class"
    n_samples: int = 25
    n_test: int = 50
    pairs_steps: int = 1500
    pairs_lr: float = 1e-2

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigurationError(f"hypernet figure3.size must be one of {SIZES}, got {self.size!r}")
        if self.n_samples < 2:
            raise ConfigurationError("hypernet figure3.n_samples must be at least 2 (GP fit)")
        _positive("hypernet figure3", n_test=self.n_test, pairs_steps=self.pairs_steps, pairs_lr=self.pairs_lr)


@dataclass(frozen=True)
class ComparisonConfig:
    """``sizes``: hyperparameter sizes tuned by local hyper-training; ``hyper_lr``: beta per size
    where it differs from ``local.hyper_lr`` (Adam moves each of the 650 per-weight lambdas by
    about beta a step, so they need a smaller one); ``bo_trials``: training runs of Bayesian
    optimisation of one global L2, of which ``bo_startup_trials`` are random."""

    sizes: tuple[str, ...] = SIZES
    hyper_lr: Mapping[str, float] = field(default_factory=lambda: {"per_weight": 0.003})
    bo_trials: int = 25
    bo_startup_trials: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(self.sizes))
        object.__setattr__(self, "hyper_lr", dict(self.hyper_lr or {}))
        bad = [s for s in [*self.sizes, *self.hyper_lr] if s not in SIZES]
        if bad:
            raise ConfigurationError(f"hypernet comparison names unknown sizes {bad}; use {SIZES}")
        _positive("hypernet comparison", bo_trials=self.bo_trials, bo_startup_trials=self.bo_startup_trials,
                  **{f"hyper_lr.{k}": v for k, v in self.hyper_lr.items()})


@dataclass(frozen=True)
class ExperimentConfig:
    """Every knob of the evaluation (mirrors ``conf/base/parameters_hypernet.yml``)."""

    log_l2_range: tuple[float, float] = (-14.0, 0.0)
    init_log_l2: float = -7.0
    train_max_iter: int = 500
    seed: int = 0
    global_: GlobalConfig = field(default_factory=GlobalConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    figure2: Figure2Config = field(default_factory=Figure2Config)
    figure3: Figure3Config = field(default_factory=Figure3Config)
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.log_l2_range)
        if not low < high:
            raise ConfigurationError(f"hypernet log_l2_range must be [low, high] with low < high, got {self.log_l2_range}")
        if not low <= self.init_log_l2 <= high:
            raise ConfigurationError(f"hypernet init_log_l2={self.init_log_l2} lies outside log_l2_range {self.log_l2_range}")
        object.__setattr__(self, "log_l2_range", (low, high))
        _positive("hypernet", train_max_iter=self.train_max_iter)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ExperimentConfig":
        """From the ``hypernet`` parameters (minus ``data``/``device``/``progress``); the YAML key
        ``global`` maps to ``global_``."""
        values = dict(values)
        nested = {"global": ("global_", GlobalConfig), "local": ("local", LocalConfig),
                  "figure2": ("figure2", Figure2Config), "figure3": ("figure3", Figure3Config),
                  "comparison": ("comparison", ComparisonConfig)}
        out: dict[str, Any] = {}
        for key, (name, kind) in nested.items():
            if key in values:
                sub = values.pop(key)
                out[name] = kind.from_dict(sub) if hasattr(kind, "from_dict") else _from_mapping(kind, sub, f"hypernet {key}")
        known = {f.name for f in fields(cls)} - {n for n, _ in nested.values()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(f"hypernet: unknown parameter(s) {unknown}; known: {sorted(known | set(nested))}")
        if "log_l2_range" in values:
            rng = values["log_l2_range"]
            if not isinstance(rng, Sequence) or len(rng) != 2:
                raise ConfigurationError(f"hypernet log_l2_range must be a list [low, high], got {rng!r}")
        return cls(**values, **out)


def _hp(size: str, data: DataSplit) -> L2Hyperparameters:
    return L2Hyperparameters(size, LogisticRegression(data.n_features, data.n_classes))


def _losses(hp: L2Hyperparameters, data: DataSplit, w: Tensor) -> dict[str, Tensor]:
    """Cross-entropy (no penalty) and error of ``w (..., P)`` on each split, each ``(...)``."""
    t = hp.target
    with torch.no_grad():
        return {
            "train_loss": t.data_loss(data.x_train, data.y_train, w),
            "val_loss": t.data_loss(data.x_val, data.y_val, w),
            "test_loss": t.data_loss(data.x_test, data.y_test, w),
            "test_error": t.error(data.x_test, data.y_test, w),
        }


# --------------------------------------------------------------------------- Figure 2
@dataclass
class Figure2Result:
    """``curves``: hypernet-predicted losses (algorithm, log_l2, train_loss, val_loss);
    ``trained``: models trained at fixed lambdas (log_l2, train_loss, val_loss, evaluations);
    ``summary``: per algorithm the tuned log-L2, the validation loss of a model retrained there,
    and the mean absolute error of the predicted losses at the trained lambdas (``local`` only
    within ``2 sigma`` of its lambda_hat, where a local approximation is meant to hold);
    ``trajectory``: lambda_hat per step of local hyper-training."""

    curves: pd.DataFrame
    trained: pd.DataFrame
    summary: pd.DataFrame
    trajectory: pd.DataFrame
    sigma: float


def figure2_experiment(data: DataSplit, cfg: ExperimentConfig, progress: bool = False) -> Figure2Result:
    """One global L2: global and local hypernets against models trained at a grid of lambdas."""
    hp = _hp("global", data)
    low, high = cfg.log_l2_range
    device = data.x_train.device
    runs = {
        "global": global_hypertraining(hp, data, cfg.global_, cfg.log_l2_range, cfg.init_log_l2, cfg.seed, progress),
        "local": local_hypertraining(hp, data, cfg.local, cfg.log_l2_range, cfg.init_log_l2, cfg.seed, progress),
    }
    grid = torch.linspace(low, high, cfg.figure2.n_grid, device=device).unsqueeze(-1)
    trained_lams = torch.linspace(low, high, cfg.figure2.n_trained).unsqueeze(-1)
    models = train_many(hp, data.x_train, data.y_train, trained_lams, cfg.train_max_iter, progress, "Figure 2 training runs")
    true_w = torch.stack([m.weights for m in models])
    true = _losses(hp, data, true_w)
    trained = pd.DataFrame({"log_l2": trained_lams.squeeze(-1).numpy(),
                            "train_loss": true["train_loss"].cpu().numpy(),
                            "val_loss": true["val_loss"].cpu().numpy(),
                            "evaluations": [m.evaluations for m in models]})
    curves, summary = [], []
    for name, run in runs.items():
        with torch.no_grad():
            pred = _losses(hp, data, run.hypernet(grid))
            at_trained = _losses(hp, data, run.hypernet(trained_lams.to(device)))
        curves.append(pd.DataFrame({"algorithm": name, "log_l2": grid.squeeze(-1).cpu().numpy(),
                                    "train_loss": pred["train_loss"].cpu().numpy(),
                                    "val_loss": pred["val_loss"].cpu().numpy()}))
        lam_hat = float(run.lam_hat)
        mask = np.ones(len(trained), bool) if name == "global" else (
            np.abs(trained["log_l2"].to_numpy() - lam_hat) <= 2 * cfg.local.sigma)
        retrained = train_at_lambda(hp, data.x_train, data.y_train, run.lam_hat, cfg.train_max_iter)
        err = {k: np.abs(at_trained[k].cpu().numpy() - true[k].cpu().numpy())[mask] for k in ("train_loss", "val_loss")}
        summary.append({
            "algorithm": name, "lam_hat": lam_hat,
            "predicted_val_loss": float(_losses(hp, data, run.weights)["val_loss"]),
            "retrained_val_loss": float(_losses(hp, data, retrained.weights)["val_loss"]),
            "n_compared": int(mask.sum()),
            "mae_train_loss": float(err["train_loss"].mean()) if mask.any() else float("nan"),
            "mae_val_loss": float(err["val_loss"].mean()) if mask.any() else float("nan"),
        })
    best = trained.loc[trained["val_loss"].idxmin()]
    summary.append({"algorithm": "grid of trained models", "lam_hat": float(best["log_l2"]),
                    "predicted_val_loss": float("nan"), "retrained_val_loss": float(best["val_loss"]),
                    "n_compared": len(trained), "mae_train_loss": 0.0, "mae_val_loss": 0.0})
    trajectory = pd.DataFrame({"step": np.arange(1, len(runs["local"].history["lam_mean"]) + 1),
                               "lam_hat": runs["local"].history["lam_mean"],
                               "predicted_val_loss": runs["local"].history["val_loss"]})
    return Figure2Result(pd.concat(curves, ignore_index=True), trained, pd.DataFrame(summary), trajectory,
                         cfg.local.sigma)


def plot_figure2(result: Figure2Result) -> Figure:
    """Left: global hypernet; right: local hypernet (drawn within 3 sigma of lambda_hat)."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    summary = result.summary.set_index("algorithm")
    for ax, name in zip(axes, ("global", "local")):
        c = result.curves[result.curves["algorithm"] == name]
        lam_hat = float(summary.loc[name, "lam_hat"])
        if name == "local":
            c = c[np.abs(c["log_l2"] - lam_hat) <= 3 * result.sigma]
        ax.plot(c["log_l2"], c["train_loss"], color="C0", label="train (hypernet)")
        ax.plot(c["log_l2"], c["val_loss"], color="C1", label="validation (hypernet)")
        ax.scatter(result.trained["log_l2"], result.trained["train_loss"], marker="x", color="C0", label="train (trained model)")
        ax.scatter(result.trained["log_l2"], result.trained["val_loss"], marker="x", color="C1", label="validation (trained model)")
        ax.axvline(lam_hat, color="k", ls="--", lw=1, label=r"$\hat\lambda$")
        ax.set_xlabel("log L2 coefficient")
        ax.set_title(f"{name} approximation of the best response")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Figure 3
@dataclass
class Figure3Result:
    """``points``: (method, predicted, true) validation losses at held-out lambdas;
    ``summary``: per method RMSE, mean and median of predicted - true, Spearman rank correlation,
    the share of under-predictions, training runs used, examples processed and wall-clock seconds
    (sample runs plus fit for the GP and the pairs hypernet; hyper-training for the last)."""

    points: pd.DataFrame
    summary: pd.DataFrame


def figure3_experiment(data: DataSplit, cfg: ExperimentConfig, progress: bool = False) -> Figure3Result:
    """GP on ``n_samples`` (lambda, val loss), hypernet on the same (lambda, w*) and the hyper-trained
    hypernet, all asked the validation loss at ``n_test`` lambdas ~ p(lambda) trained for real."""
    f3 = cfg.figure3
    hp = _hp(f3.size, data)
    low, high = cfg.log_l2_range
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    sample_lams = low + (high - low) * torch.rand(f3.n_samples, hp.dim, generator=gen)
    test_lams = low + (high - low) * torch.rand(f3.n_test, hp.dim, generator=gen)
    clock = time.perf_counter()
    samples = train_many(hp, data.x_train, data.y_train, sample_lams, cfg.train_max_iter, progress, "Figure 3 sample runs")
    sample_seconds = time.perf_counter() - clock
    tests = train_many(hp, data.x_train, data.y_train, test_lams, cfg.train_max_iter, progress, "Figure 3 test runs")
    sample_w = torch.stack([m.weights for m in samples])
    sample_val = _losses(hp, data, sample_w)["val_loss"]
    true_val = _losses(hp, data, torch.stack([m.weights for m in tests]))["val_loss"].cpu()
    device = data.x_train.device

    clock = time.perf_counter()
    gp = fit_gp_on_losses(sample_lams, sample_val, cfg.log_l2_range)
    gp_seconds, clock = time.perf_counter() - clock, time.perf_counter()
    pairs_net = fit_hypernet_on_pairs(hp, sample_lams, sample_w, cfg.global_.hidden, cfg.log_l2_range,
                                      f3.pairs_steps, f3.pairs_lr, cfg.seed, progress)
    pairs_seconds, clock = time.perf_counter() - clock, time.perf_counter()
    hyper = global_hypertraining(hp, data, cfg.global_, cfg.log_l2_range, cfg.init_log_l2, cfg.seed, progress)
    hyper_seconds = time.perf_counter() - clock
    n_tr = len(data.y_train)
    sample_examples = sum(m.evaluations for m in samples) * n_tr
    with torch.no_grad():
        preds = {
            "GP on samples": (gp(test_lams), f3.n_samples, sample_examples, sample_seconds + gp_seconds),
            "hypernet on samples": (_losses(hp, data, pairs_net(test_lams.to(device)))["val_loss"].cpu(),
                                    f3.n_samples, sample_examples, sample_seconds + pairs_seconds),
            "hyper-trained hypernet": (_losses(hp, data, hyper.hypernet(test_lams.to(device)))["val_loss"].cpu(),
                                       1, hyper.examples, hyper_seconds),
        }
    points, summary = [], []
    t = true_val.numpy()
    for method, (pred, runs, examples, seconds) in preds.items():
        p = pred.numpy()
        diff = p - t
        points.append(pd.DataFrame({"method": method, "test_index": np.arange(len(t)), "predicted": p, "true": t}))
        summary.append({"method": method, "rmse": float(np.sqrt(np.mean(diff**2))), "mean_diff": float(diff.mean()),
                        "median_diff": float(np.median(diff)), "spearman": float(spearmanr(p, t).statistic),
                        "under_predicted": float(np.mean(diff < 0)), "training_runs": runs, "examples": int(examples),
                        "seconds": seconds})
    return Figure3Result(pd.concat(points, ignore_index=True), pd.DataFrame(summary))


def plot_figure3(points: pd.DataFrame) -> Figure:
    """One row per method: predicted against true (left) and histogram of predicted - true (right)."""
    methods = list(dict.fromkeys(points["method"]))
    fig = Figure(figsize=(9, 3.0 * len(methods)))
    axes = fig.subplots(len(methods), 2, squeeze=False)
    lo = float(min(points["predicted"].min(), points["true"].min()))
    hi = float(max(points["predicted"].max(), points["true"].max()))
    diffs = points["predicted"] - points["true"]
    bins = np.linspace(float(diffs.min()), float(diffs.max()) + 1e-9, 25)
    for row, method in zip(axes, methods):
        p = points[points["method"] == method]
        row[0].scatter(p["true"], p["predicted"], s=12, alpha=0.7)
        row[0].plot([lo, hi], [lo, hi], color="k", lw=1)
        row[0].set_xlabel("true validation loss")
        row[0].set_ylabel("predicted")
        row[0].set_title(method)
        row[1].hist(p["predicted"] - p["true"], bins=bins, color="C1")
        row[1].axvline(0, color="k", lw=1)
        row[1].set_xlabel("predicted - true")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- many hyperparameters
@dataclass
class ComparisonResult:
    """``table``: one row per method (see :func:`comparison_experiment`); ``curves``: the
    validation loss per lambda step of each hyper-training run and BO's best-so-far per trial."""

    table: pd.DataFrame
    curves: pd.DataFrame


def comparison_experiment(data: DataSplit, cfg: ExperimentConfig, progress: bool = False) -> ComparisonResult:
    """Local hyper-training at each size against BO of one global L2.

    Rows: ``bayesopt`` (best of ``bo_trials`` training runs), and per size the hypernet's own
    weights ``w_phi(lambda_hat)`` (one hyper-training run) and a model retrained at ``lambda_hat``
    (one more run). ``examples`` counts training and validation examples processed (each L-BFGS
    loss-and-gradient call is ``n_train``; a Newton step, which also solves with the ``P x P``
    Hessian, counts the same, so this understates Newton's cost) and ``seconds`` the wall clock.
    """
    rows, curves = [], []
    n_tr = len(data.y_train)
    hp_global = _hp("global", data)
    clock = time.perf_counter()
    bo = bayesian_optimisation_global_l2(hp_global, data, cfg.log_l2_range, cfg.comparison.bo_trials,
                                         cfg.comparison.bo_startup_trials, cfg.seed, cfg.train_max_iter, progress)
    bo_examples = bo.evaluations * n_tr + cfg.comparison.bo_trials * len(data.y_val)
    rows.append(_row("bayesopt (Optuna GP)", hp_global, data, bo.model.weights, bo.lam, cfg.comparison.bo_trials, bo_examples,
                     time.perf_counter() - clock))
    best = np.minimum.accumulate([v for _, v in bo.trials])
    curves.append(pd.DataFrame({"method": "bayesopt best-so-far", "step": np.arange(1, len(best) + 1), "val_loss": best}))
    for size in cfg.comparison.sizes:
        hp = _hp(size, data)
        clock = time.perf_counter()
        local = replace(cfg.local, hyper_lr=cfg.comparison.hyper_lr.get(size, cfg.local.hyper_lr))
        run = local_hypertraining(hp, data, local, cfg.log_l2_range, cfg.init_log_l2, cfg.seed, progress)
        seconds = time.perf_counter() - clock
        rows.append(_row(f"local hyper-training, {size}", hp, data, run.weights, run.lam_hat, 1, run.examples, seconds))
        model = train_at_lambda(hp, data.x_train, data.y_train, run.lam_hat, cfg.train_max_iter)
        rows.append(_row(f"retrained at lambda_hat, {size}", hp, data, model.weights, run.lam_hat, 2,
                         run.examples + model.evaluations * n_tr, time.perf_counter() - clock))
        curves.append(pd.DataFrame({"method": f"hyper-training {size}", "step": np.arange(1, len(run.history["val_loss"]) + 1),
                                    "val_loss": run.history["val_loss"]}))
    return ComparisonResult(pd.DataFrame(rows), pd.concat(curves, ignore_index=True))


def _row(method: str, hp: L2Hyperparameters, data: DataSplit, w: Tensor, lam: Tensor, runs: int, examples: int,
         seconds: float) -> dict[str, Any]:
    losses = {k: float(v) for k, v in _losses(hp, data, w).items()}
    lam = lam.detach().cpu()
    return {"method": method, "hyperparameters": hp.dim, "training_runs": runs, "examples": int(examples),
            "seconds": seconds,
            "log_l2_mean": float(lam.mean()), "log_l2_std": float(lam.std()) if lam.numel() > 1 else 0.0, **losses}


def plot_comparison(curves: pd.DataFrame) -> Figure:
    """Left: BO's best validation loss per training run; right: predicted validation loss per
    lambda step of local hyper-training at each size (log x axis)."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    bo = curves[curves["method"].str.startswith("bayesopt")]
    left.plot(bo["step"], bo["val_loss"], marker="o")
    left.set_xlabel("training runs")
    left.set_ylabel("best validation loss")
    left.set_title("Bayesian optimisation, one global L2")
    for method, c in curves[~curves["method"].str.startswith("bayesopt")].groupby("method", sort=False):
        right.plot(c["step"], c["val_loss"], label=method)
    right.set_xscale("log")
    right.set_xlabel("lambda steps (one training run)")
    right.set_ylabel("predicted validation loss")
    right.set_title("local hyper-training")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["ExperimentConfig", "Figure2Config", "Figure3Config", "ComparisonConfig", "figure2_experiment",
           "plot_figure2", "figure3_experiment", "plot_figure3", "comparison_experiment", "plot_comparison",
           "Figure2Result", "Figure3Result", "ComparisonResult"]
