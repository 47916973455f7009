"""Baselines the evaluation compares hyper-training with.

* :func:`train_at_lambda`: the model trained directly at a fixed lambda (Newton or L-BFGS on the
  convex training loss), i.e. the "true" best response ``w*(lambda)`` of the paper.
* :func:`fit_gp_on_losses`: a Gaussian process (BoTorch ``SingleTaskGP``) on ``(lambda, val loss)``.
* :func:`fit_hypernet_on_pairs`: the same hypernet, regressed on ``(lambda, w*(lambda))`` pairs.
* :func:`bayesian_optimisation_global_l2`: one global log-L2 tuned by Optuna's GP sampler.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from transfertune.methods.hypernet.data import DataSplit
from transfertune.methods.hypernet.hypernet import HyperNet
from transfertune.methods.hypernet.hyperparams import L2Hyperparameters
from transfertune.methods.hypernet.training import Bounds, make_hypernet


@dataclass
class TrainedModel:
    """``weights (P,)`` trained at ``lam (d,)``; ``evaluations``: loss-and-gradient calls, each on
    the full training set (so ``evaluations * n_train`` examples were processed)."""

    lam: Tensor
    weights: Tensor
    evaluations: int


NEWTON_MAX_WEIGHTS = 2000  # above this the P x P Hessian solve costs more than L-BFGS


def train_at_lambda(hp: L2Hyperparameters, x: Tensor, y: Tensor, lam: Tensor, max_iter: int = 500,
                    solver: str = "auto") -> TrainedModel:
    """Minimise ``L_Train(w, lam)`` over ``w (P,)`` from ``w = 0``: one "training run".

    The loss is strictly convex for finite ``lam``. ``solver="newton"`` (default for
    ``P <= 2000``, i.e. digits) takes damped Newton steps in float64 and reaches the optimum to
    machine precision in tens of steps even when some coefficients are tiny; ``"lbfgs"`` (default
    above, i.e. MNIST) runs full-batch L-BFGS. ``lam (d,)`` are log-coefficients.
    """
    lam = lam.detach().to(x.device)
    if solver == "auto":
        solver = "newton" if hp.target.n_weights <= NEWTON_MAX_WEIGHTS else "lbfgs"
    if solver == "newton":
        return _newton(hp, x, y, lam, max_iter)
    if solver != "lbfgs":
        raise ValueError(f"solver must be auto, newton or lbfgs, got {solver!r}")
    w = torch.zeros(hp.target.n_weights, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter,
                            tolerance_grad=1e-6, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")
    calls = [0]

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        calls[0] += 1
        loss = hp.train_loss(x, y, w, lam)
        loss.backward()
        return loss

    opt.step(closure)
    return TrainedModel(lam.detach().cpu(), w.detach(), calls[0])


def _newton(hp: L2Hyperparameters, x: Tensor, y: Tensor, lam: Tensor, max_iter: int,
            tol: float = 1e-9) -> TrainedModel:
    """Damped Newton on the multinomial logistic loss with the exact ``(P, P)`` Hessian.

    With ``xt = [x, 1]`` of shape ``(N, F + 1)`` the flat index ``i * C + c`` (bias: ``i = F``)
    matches :class:`LogisticRegression`, and the Hessian of the mean cross-entropy is
    ``sum_n xt_ni xt_nj (p_nc delta_cd - p_nc p_nd) / N``.
    """
    t = hp.target
    n, c = len(y), t.n_classes
    xt = torch.cat([x, torch.ones(n, 1, device=x.device, dtype=x.dtype)], 1).double()
    onehot = torch.nn.functional.one_hot(y, c).double()
    coef = hp.coefficients(lam.double())
    eye = torch.eye(c, dtype=torch.float64, device=x.device)

    def loss(w: Tensor) -> Tensor:
        return hp.train_loss(x.double(), y, w, lam.double())

    w = torch.zeros(t.n_weights, dtype=torch.float64, device=x.device)
    calls = 0
    for _ in range(max_iter):
        logits = xt @ w.view(-1, c)  # (N, C): rows of w.view are the F + 1 inputs
        p = torch.softmax(logits, -1)
        grad = (xt.T @ (p - onehot) / n).reshape(-1) + 2 * coef * w
        calls += 1
        if grad.abs().max() < tol:
            break
        z = (xt.unsqueeze(-1) * p.unsqueeze(1)).reshape(n, -1)  # (N, P): xt_ni p_nc
        diag = (xt.T.unsqueeze(0) * p.T.unsqueeze(1)) @ xt  # (C, F+1, F+1): sum_n p_nc xt_ni xt_nj
        hess = (torch.einsum("cij,cd->icjd", diag, eye).reshape(t.n_weights, -1) - z.T @ z) / n
        hess = hess + torch.diag(2 * coef)
        # The step is solved in float32 (about half the time of float64 on CPU): an inexact Hessian
        # only slows the final convergence, the gradient and iterate stay in float64.
        hess32, grad32 = hess.float(), grad.float()
        chol, info = torch.linalg.cholesky_ex(hess32)  # SPD for finite lam
        step = (torch.cholesky_solve(grad32.unsqueeze(-1), chol).squeeze(-1) if int(info) == 0
                else torch.linalg.lstsq(hess32, grad32.unsqueeze(-1)).solution.squeeze(-1)).double()
        f0, slope, size = loss(w), float(grad @ step), 1.0
        while True:  # backtracking (Armijo) keeps the full Newton step once close to the optimum
            calls += 1
            if loss(w - size * step) <= f0 - 0.25 * size * slope or size < 1e-8:
                break
            size /= 2
        w = w - size * step
    return TrainedModel(lam.detach().cpu(), w.to(x.dtype), calls)


def train_many(hp: L2Hyperparameters, x: Tensor, y: Tensor, lams: Tensor, max_iter: int = 500,
               progress: bool = False, desc: str = "training at fixed lambda") -> list[TrainedModel]:
    """:func:`train_at_lambda` for each row of ``lams (n, d)``."""
    bar = tqdm(lams, desc=desc, disable=not progress, leave=False)
    return [train_at_lambda(hp, x, y, lam, max_iter) for lam in bar]


def fit_gp_on_losses(lams: Tensor, losses: Tensor, bounds: Bounds) -> Callable[[Tensor], Tensor]:
    """GP on ``lams (n, d)`` -> ``losses (n,)``; returns ``predict: (m, d) -> posterior mean (m,)``.

    Inputs are scaled to the unit cube of ``bounds`` and outputs standardised (BoTorch transforms);
    the kernel hyperparameters are fitted by marginal likelihood.
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    d = lams.shape[-1]
    box = torch.tensor([[bounds[0]] * d, [bounds[1]] * d], dtype=torch.float64)
    train_x = lams.detach().cpu().double()
    train_y = losses.detach().cpu().double().reshape(-1, 1)
    gp = SingleTaskGP(train_x, train_y, input_transform=Normalize(d, bounds=box),
                      outcome_transform=Standardize(1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    gp.eval()

    def predict(query: Tensor) -> Tensor:
        with torch.no_grad():
            return gp.posterior(query.detach().cpu().double()).mean.squeeze(-1).float()

    return predict


def fit_hypernet_on_pairs(hp: L2Hyperparameters, lams: Tensor, weights: Tensor, hidden: int | None,
                          bounds: Bounds, steps: int = 3000, lr: float = 3e-3, seed: int = 0,
                          progress: bool = False) -> HyperNet:
    """The paper's second row of Figure 3: a hypernet regressed on ``(lams (n, d), weights (n, P))``.

    Same architecture and input scaling as the hyper-trained global hypernet; full-batch Adam on
    the mean squared error of the weights.
    """
    low, high = bounds
    net = make_hypernet(hp, hidden, (low + high) / 2, (high - low) / 2, seed, weights.device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    lams = lams.to(weights.device)
    for _ in tqdm(range(steps), desc="hypernet on pairs", disable=not progress, leave=False):
        opt.zero_grad(set_to_none=True)
        loss = (net(lams) - weights).pow(2).mean()
        loss.backward()
        opt.step()
    return net


@dataclass
class BayesOptResult:
    """Best global log-L2 ``lam (1,)`` of ``n_trials`` training runs and its model."""

    lam: Tensor
    model: TrainedModel
    val_loss: float
    trials: list[tuple[float, float]]  # (log-L2, validation loss) in the order tried
    evaluations: int  # L-BFGS loss-and-gradient calls over all trials


def bayesian_optimisation_global_l2(hp: L2Hyperparameters, data: DataSplit, bounds: Bounds,
                                    n_trials: int = 25, n_startup_trials: int = 5, seed: int = 0,
                                    max_iter: int = 500, progress: bool = False) -> BayesOptResult:
    """Tune one global log-L2 on the validation loss with Optuna's GP sampler (one run a trial)."""
    import optuna

    if hp.size != "global":
        raise ValueError("Bayesian optimisation here tunes the single global L2 only")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # per-trial INFO lines would bury the bar
    with warnings.catch_warnings():  # deterministic_objective is flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials,
                                            deterministic_objective=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    models: dict[int, TrainedModel] = {}
    bar = tqdm(total=n_trials, desc="Bayesian optimisation", disable=not progress, leave=False)

    def objective(trial: optuna.Trial) -> float:
        lam = torch.tensor([trial.suggest_float("log_l2", *bounds)])
        model = train_at_lambda(hp, data.x_train, data.y_train, lam, max_iter)
        models[trial.number] = model
        bar.update(1)
        return float(hp.target.data_loss(data.x_val, data.y_val, model.weights))

    try:
        study.optimize(objective, n_trials=n_trials)
    finally:
        bar.close()
        optuna.logging.set_verbosity(verbosity)
    best = study.best_trial
    trials = [(float(t.params["log_l2"]), float(t.value)) for t in study.trials]
    return BayesOptResult(models[best.number].lam, models[best.number], float(best.value), trials,
                          int(np.sum([m.evaluations for m in models.values()])))
