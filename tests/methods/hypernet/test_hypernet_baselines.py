"""Baselines: direct training at a fixed lambda, GP on losses, hypernet on pairs, BO of one L2."""

import pytest
import torch

from transfertune.methods.hypernet import (
    L2Hyperparameters,
    bayesian_optimisation_global_l2,
    fit_gp_on_losses,
    fit_hypernet_on_pairs,
    train_at_lambda,
)


@pytest.mark.parametrize("size", ["global", "per_class"])
def test_newton_and_lbfgs_reach_the_same_optimum(digits, target, size):
    hp = L2Hyperparameters(size, target)
    lam = torch.linspace(-9, -3, hp.dim)
    newton = train_at_lambda(hp, digits.x_train, digits.y_train, lam, solver="newton")
    lbfgs = train_at_lambda(hp, digits.x_train, digits.y_train, lam, solver="lbfgs")
    f_newton = hp.train_loss(digits.x_train, digits.y_train, newton.weights, lam)
    f_lbfgs = hp.train_loss(digits.x_train, digits.y_train, lbfgs.weights, lam)
    assert float(f_newton) <= float(f_lbfgs) + 1e-6 and float(f_lbfgs) - float(f_newton) < 1e-4
    w = newton.weights.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(hp.train_loss(digits.x_train, digits.y_train, w, lam), w)
    assert grad.abs().max() < 1e-5  # a stationary point of the convex loss: the best response
    assert 0 < newton.evaluations < 100


def test_gp_interpolates_a_smooth_loss_curve():
    lams = torch.linspace(-14, 0, 12).unsqueeze(-1)
    losses = ((lams.squeeze(-1) + 7) / 5) ** 2
    predict = fit_gp_on_losses(lams, losses, (-14.0, 0.0))
    query = torch.tensor([[-10.3], [-6.1], [-1.7]])
    assert predict(query).shape == (3,)
    assert torch.allclose(predict(query), ((query.squeeze(-1) + 7) / 5) ** 2, atol=0.05)


def test_hypernet_on_pairs_fits_the_given_weights(target):
    hp = L2Hyperparameters("per_class", target)
    gen = torch.Generator().manual_seed(0)
    lams = -14 + 14 * torch.rand(25, 10, generator=gen)
    weights = torch.tanh((lams + 7) / 7) @ torch.randn(10, 650, generator=gen) * 0.3
    net = fit_hypernet_on_pairs(hp, lams, weights, hidden=50, bounds=(-14.0, 0.0), steps=400, lr=0.01)
    with torch.no_grad():
        mse = (net(lams) - weights).pow(2).mean()
    assert float(mse) < 0.05 * float(weights.pow(2).mean())


def test_bayesian_optimisation_returns_its_best_trial(digits, target):
    hp = L2Hyperparameters("global", target)
    result = bayesian_optimisation_global_l2(hp, digits, (-14.0, 0.0), n_trials=5, n_startup_trials=3, seed=0)
    assert len(result.trials) == 5 and result.evaluations > 0
    assert result.val_loss == min(v for _, v in result.trials)
    assert -14.0 <= float(result.lam) <= 0.0
    assert abs(float(target.data_loss(digits.x_val, digits.y_val, result.model.weights)) - result.val_loss) < 1e-6
    with pytest.raises(ValueError, match="global"):
        bayesian_optimisation_global_l2(L2Hyperparameters("per_class", target), digits, (-14.0, 0.0), 2)
