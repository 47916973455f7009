"""The attack: min-norm weights, flips with in-range perturbations, regression moves >= sigma."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfertune.data import load_source
from transfertune.data.adversarial import (
    AttackConfig,
    ClassifierConfig,
    adversarial_scores,
    data_box,
    min_norm_frank_wolfe,
    min_norm_two,
    perturbation_weights,
    score_source,
    train_model,
)
from transfertune.errors import ConfigurationError

CPU = torch.device("cpu")


def test_min_norm_two_known_cases():
    g1 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 2.0], [1.0, 1.0]])
    g2 = torch.tensor([[0.0, 1.0], [2.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    alpha = min_norm_two(g1, g2)
    # orthogonal unit vectors: midpoint; g1 inside the hull's near side: g1; opposed: the zero point
    # a*(1,0) + (1-a)*(-3,0) = 0 -> a = 3/4; (2,2) vs (0,1): a = (1-2)/(8+1-4) < 0 -> clipped to 0
    np.testing.assert_allclose(alpha.numpy(), [0.5, 1.0, 0.75, 0.0, 0.5], atol=1e-6)
    combo = alpha[:, None] * g1 + (1 - alpha[:, None]) * g2
    assert combo[2].norm() < 1e-6


def test_min_norm_two_is_the_minimum_of_the_segment():
    gen = torch.Generator().manual_seed(0)
    g1, g2 = torch.randn(64, 5, generator=gen), torch.randn(64, 5, generator=gen)
    alpha = min_norm_two(g1, g2)
    grid = torch.linspace(0, 1, 2001)
    norms = ((grid[None, :, None] * g1[:, None] + (1 - grid[None, :, None]) * g2[:, None]) ** 2).sum(-1)
    best = norms.min(dim=1).values
    ours = ((alpha[:, None] * g1 + (1 - alpha[:, None]) * g2) ** 2).sum(-1)
    assert torch.all(ours <= best + 1e-5)


def test_frank_wolfe_matches_known_solutions():
    eye = torch.eye(3).unsqueeze(0)  # three orthonormal gradients: uniform weights, norm^2 = 1/3
    alpha = min_norm_frank_wolfe(eye, max_iter=2000, tol=1e-9)
    np.testing.assert_allclose(alpha.numpy(), [[1 / 3] * 3], atol=1e-2)
    gen = torch.Generator().manual_seed(1)
    pair = torch.randn(16, 2, 4, generator=gen)
    fw = min_norm_frank_wolfe(pair, max_iter=500, tol=1e-10)
    closed = min_norm_two(pair[:, 0], pair[:, 1])
    v_fw = (fw.unsqueeze(2) * pair).sum(1).norm(dim=1)
    v_cf = (closed[:, None] * pair[:, 0] + (1 - closed[:, None]) * pair[:, 1]).norm(dim=1)
    np.testing.assert_allclose(v_fw.numpy(), v_cf.numpy(), atol=1e-4)


def test_perturbation_weights():
    X = np.stack([np.zeros(50), np.linspace(0, 1, 50), 2 * np.linspace(0, 1, 50)], axis=1)
    W = perturbation_weights(X, "data", floor=0.1)
    # spreads s, 2s (median 1.5s): weights 1.5 and 0.75; the constant column is capped at 1/floor
    np.testing.assert_allclose(W, [10.0, 1.5, 0.75], rtol=1e-5)
    np.testing.assert_array_equal(perturbation_weights(X, "uniform"), np.ones(3))
    with pytest.raises(ConfigurationError):
        perturbation_weights(X, "learned")


@pytest.fixture(scope="module")
def digits_scored():
    source = load_source("digits", limit=300)
    cfg = AttackConfig(iterations=60, batch_size=128, seed=3)
    model, result = score_source(source, ClassifierConfig(epochs=15, hidden=32), cfg, CPU, seed=0, return_perturbations=True, progress=False)
    return source, model, result


def test_attack_flips_successful_samples_within_the_data_range(digits_scored):
    source, model, r = digits_scored
    assert r.success.mean() > 0.9
    ok = r.success
    x_adv = torch.as_tensor(source.X[ok] + r.perturbation[ok])
    assert x_adv.min() >= 0.0 - 1e-6 and x_adv.max() <= 1.0 + 1e-6
    with torch.no_grad():
        clean = model.net(torch.as_tensor(source.X[ok])).argmax(1).numpy()
        adv = model.net(x_adv).argmax(1).numpy()
    np.testing.assert_array_equal(clean, r.clean_prediction[ok])
    assert np.all(adv != clean)
    np.testing.assert_array_equal(adv, r.adversarial_prediction[ok])
    flat = r.perturbation[ok].reshape(ok.sum(), -1)
    np.testing.assert_allclose(np.linalg.norm(flat * r.weights, axis=1), r.norm[ok], rtol=1e-4)
    assert np.all(np.isinf(r.norm[~ok])) and np.all(np.isfinite(r.norm[ok]))
    # the min-norm weights were used: in the margin band lambda1 lies strictly between 0 and 1
    assert np.nanmax(r.lambda1) > 0 and np.nanmin(r.lambda1) < 1


def test_min_norm_weights_beat_a_fixed_constant_without_search(digits_scored):
    source, model, r = digits_scored
    lower, upper = data_box(source)
    fixed = AttackConfig(iterations=60, batch_size=128, seed=3, weighting="fixed", fixed_lambda=(1.0, 1.0))
    rf = adversarial_scores(model, source.X, fixed, lower, upper, r.weights, progress=False)
    both = r.success & rf.success
    # one constant without the binary search either fails or overshoots on many samples
    assert rf.success.mean() < r.success.mean() or np.median(r.norm[both]) < np.median(rf.norm[both])


def test_regression_attack_moves_prediction_by_sigma():
    source = load_source("diabetes")
    sigma = 0.3
    cfg = AttackConfig(iterations=80, batch_size=512, sigma=sigma, lr=0.05, seed=0)
    model, r = score_source(source, ClassifierConfig(epochs=40), cfg, CPU, seed=0, return_perturbations=True, progress=False)
    assert model.task_type == "regression" and r.success.mean() > 0.9
    ok = r.success
    lower, upper = data_box(source)
    x_adv = source.X[ok] + r.perturbation[ok]
    assert np.all(x_adv >= lower - 1e-5) and np.all(x_adv <= upper + 1e-5)
    with torch.no_grad():
        z0 = model.net(torch.as_tensor(source.X[ok]))[:, 0].numpy()
        z1 = model.net(torch.as_tensor(x_adv))[:, 0].numpy()
    assert np.all(np.abs(z1 - z0) >= sigma - 1e-5)


def test_scoring_is_reproducible():
    source = load_source("wine")
    cfg = AttackConfig(iterations=30, seed=5)
    _, a = score_source(source, ClassifierConfig(epochs=10), cfg, CPU, seed=1, progress=False)
    _, b = score_source(source, ClassifierConfig(epochs=10), cfg, CPU, seed=1, progress=False)
    np.testing.assert_array_equal(a.norm, b.norm)
    np.testing.assert_array_equal(a.success, b.success)


def test_bad_attack_settings():
    with pytest.raises(ConfigurationError, match="c must be > 0"):
        AttackConfig(c=0)
    with pytest.raises(ConfigurationError, match="target"):
        AttackConfig(target="some")
    with pytest.raises(ConfigurationError, match="cnn"):
        train_model(load_source("wine"), ClassifierConfig(model="cnn"), CPU, 0, progress=False)
