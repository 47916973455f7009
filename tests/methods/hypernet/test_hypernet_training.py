"""Global and local hyper-training (the paper's two algorithms) on a small digits split."""

import pytest
import torch

from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet import (
    GlobalConfig,
    L2Hyperparameters,
    LocalConfig,
    descend_lambda,
    global_hypertraining,
    local_hypertraining,
    train_at_lambda,
    train_hypernet,
)
from transfertune.methods.hypernet.training import make_hypernet

BOUNDS = (-14.0, 0.0)


def test_hypernet_trained_at_a_fixed_lambda_matches_the_directly_trained_model(digits, target):
    # p(lambda) a point mass: hyper-training reduces to ordinary training, so the hypernet's weights
    # must reach the same (convex) optimum as the model trained directly at that lambda.
    hp = L2Hyperparameters("global", target)
    lam = torch.tensor([-6.0])
    direct = train_at_lambda(hp, digits.x_train, digits.y_train, lam)
    net = make_hypernet(hp, None, -6.0, 1.0, seed=0, device="cpu")
    gen = torch.Generator().manual_seed(0)
    curve = train_hypernet(net, hp, digits.x_train, digits.y_train, lambda k: lam.expand(k, 1), 500, 0.02, 1, None, gen)
    with torch.no_grad():
        w = net(lam)
    best = float(hp.train_loss(digits.x_train, digits.y_train, direct.weights, lam))
    reached = float(hp.train_loss(digits.x_train, digits.y_train, w, lam))
    assert best - 1e-5 <= reached <= best + 1e-4
    assert abs(float(target.data_loss(digits.x_val, digits.y_val, w)) - float(target.data_loss(digits.x_val, digits.y_val, direct.weights))) < 1e-3
    assert curve[-1] < curve[0]


def test_local_hypertraining_learns_the_best_response_slope(digits, target):
    # lambda_hat frozen (tiny beta): the linear hypernet, trained on lambda ~ N(lambda_hat, sigma^2),
    # must learn d w*/d lambda. Feeding lambda_hat instead of the sample would leave the slope at 0.
    hp = L2Hyperparameters("global", target)
    run = local_hypertraining(hp, digits, LocalConfig(steps=400, lr=0.01, hyper_lr=1e-9), BOUNDS, -6.0, seed=0)
    lam, delta = torch.tensor([-6.0]), torch.tensor([0.5])
    with torch.no_grad():
        slope = run.hypernet(lam + delta) - run.hypernet(lam - delta)
    true = (train_at_lambda(hp, digits.x_train, digits.y_train, lam + delta).weights
            - train_at_lambda(hp, digits.x_train, digits.y_train, lam - delta).weights)
    assert torch.nn.functional.cosine_similarity(slope, true, dim=0) > 0.95
    assert 0.8 < float(slope.norm() / true.norm()) < 1.25


def test_global_hypertraining_finds_a_near_optimal_global_l2(digits, target):
    hp = L2Hyperparameters("global", target)
    run = global_hypertraining(hp, digits, GlobalConfig(steps=600, hyper_steps=100), BOUNDS, -3.0, seed=0)
    grid = torch.linspace(*BOUNDS, 8).unsqueeze(-1)  # steps of 2
    val = torch.stack([target.data_loss(digits.x_val, digits.y_val, train_at_lambda(hp, digits.x_train, digits.y_train, g).weights)
                       for g in grid])
    at_hat = target.data_loss(digits.x_val, digits.y_val, train_at_lambda(hp, digits.x_train, digits.y_train, run.lam_hat).weights)
    assert float(at_hat) < float(val.min()) + 0.02  # started at -3, whose loss is far above
    assert float(val[grid.squeeze(-1) == -4.0]) > float(val.min()) + 0.3
    assert len(run.history["phi_loss"]) == 600 and len(run.history["val_loss"]) == 100
    assert run.weights.shape == (650,) and run.examples == 600 * 16 * 50 + 100 * 100


def test_descend_lambda_stays_in_the_box_and_lowers_the_predicted_loss(digits, target):
    hp = L2Hyperparameters("per_class", target)
    net = make_hypernet(hp, 16, -7.0, 7.0, seed=0, device="cpu")
    gen = torch.Generator().manual_seed(0)
    train_hypernet(net, hp, digits.x_train, digits.y_train, lambda k: BOUNDS[0] + 14 * torch.rand(k, 10, generator=gen),
                   150, 0.01, 8, 25, gen)
    lam, curve = descend_lambda(net, hp, digits.x_val, digits.y_val, hp.full(-1.0), 60, 0.5, BOUNDS, None, gen)
    assert lam.shape == (10,) and bool(((lam >= BOUNDS[0]) & (lam <= BOUNDS[1])).all())
    assert curve[-1] < curve[0]
    assert all(p.requires_grad for p in net.parameters())  # phi is unfrozen again


@pytest.mark.parametrize("size", ["per_class", "per_weight"])
def test_local_hypertraining_at_many_hyperparameters(digits, target, size):
    hp = L2Hyperparameters(size, target)
    cfg = LocalConfig(steps=60, inner_steps=2, batch_size=20, n_lambda=4, hyper_lr=0.05)
    run = local_hypertraining(hp, digits, cfg, BOUNDS, -7.0, seed=1)
    assert run.lam_hat.shape == (hp.dim,) and run.weights.shape == (650,)
    assert bool(((run.lam_hat >= BOUNDS[0]) & (run.lam_hat <= BOUNDS[1])).all())
    assert float(run.lam_hat.std()) > 0  # the hyperparameters moved apart
    assert len(run.history["phi_loss"]) == 120 and len(run.history["val_loss"]) == 60
    assert run.examples == 60 * (2 * 4 * 20 + 100)
    again = local_hypertraining(hp, digits, cfg, BOUNDS, -7.0, seed=1)
    assert torch.equal(run.lam_hat, again.lam_hat)  # seeded


def test_configs_name_bad_keys_and_values():
    with pytest.raises(ConfigurationError, match="stepz"):
        GlobalConfig.from_dict({"stepz": 10})
    with pytest.raises(ConfigurationError, match="sigma must be positive"):
        LocalConfig.from_dict({"sigma": 0})
