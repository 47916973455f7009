"""GP helpers against BoTorch, the warm-start schedule, GP-UCB/EI behaviour and Box-BO's box."""

import numpy as np
import pytest
import torch

from transfertune.core.metrics import config_ranks
from transfertune.errors import ConfigurationError
from transfertune.methods.baselines.gp import GPFactor, WarmStartGP, fit_gp, top_config_box
from transfertune.methods.baselines.maxtrial import GridPrediction, max_trial_scores
from transfertune.methods.registry import make_method
from transfertune.methods.runner import run_episode


def _data(n: int = 15, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    return X, np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + 0.01 * rng.normal(size=n)


def test_factor_predictions_match_botorch_posterior():
    X, y = _data()
    model = fit_gp(X, y, maxiter=30)
    Xs = np.random.default_rng(1).random((7, 3))
    mean, var = GPFactor(model).predict(Xs)
    with torch.no_grad():
        posterior = model.posterior(torch.as_tensor(Xs))
    np.testing.assert_allclose(mean, posterior.mean.squeeze(-1).numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(var, posterior.variance.squeeze(-1).numpy(), rtol=1e-5, atol=1e-9)
    _, cov = GPFactor(model).joint(Xs)
    np.testing.assert_allclose(np.diag(cov), GPFactor(model).predict(Xs, standardized=True)[1], rtol=1e-6, atol=1e-9)


def test_leave_one_out_matches_conditioning_on_the_other_points():
    X, y = _data(n=10)
    model = fit_gp(X, y, maxiter=30)
    loo_mean, loo_var = GPFactor(model).leave_one_out()
    targets = model.train_targets.numpy()  # standardised y: LOO is on that scale
    with torch.no_grad():
        K = model.covar_module(torch.as_tensor(X)).to_dense().numpy() + float(model.likelihood.noise) * np.eye(10)
        prior = float(model.mean_module.constant)
    for i in (0, 4, 9):
        keep = np.arange(10) != i
        k, Kk = K[i, keep], K[np.ix_(keep, keep)]
        expected_mean = prior + k @ np.linalg.solve(Kk, targets[keep] - prior)
        expected_var = K[i, i] - k @ np.linalg.solve(Kk, k)  # of y_i, noise included (R&W eq. 5.12)
        np.testing.assert_allclose(loo_mean[i], expected_mean, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(loo_var[i], expected_var, rtol=1e-6, atol=1e-10)


def test_warm_start_refits_on_schedule_and_caps_the_data():
    gp = WarmStartGP(refit_every=3, full_refits=2, maxiter=10, max_points=6)
    X, y = _data(n=12)
    for n in range(1, 10):
        gp.update(X[:n], y[:n])
    # fits at n = 2, 3 (full refits), then at n = 6 and 9 (three new points each time)
    assert gp.n_fits == 4 and gp.n_at_fit == 9
    idx = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    epochs = np.array([1, 2, 3, 1, 2, 1, 2, 3, 4, 1])
    keep = gp.subsample(idx, epochs, np.random.default_rng(0))
    assert len(keep) == 6 and {2, 4, 8, 9} <= set(keep.tolist())  # every config's latest epoch stays


def test_max_trial_takes_the_best_epoch_of_each_config():
    mean = np.array([[0.1, 0.9, 0.2], [0.5, 0.5, 0.5]])
    variance = np.full_like(mean, 0.04)
    scores = max_trial_scores(GridPrediction(mean, variance), "ucb", eta=0.5)
    np.testing.assert_allclose(scores, [0.9 + 0.5 * 0.2, 0.5 + 0.5 * 0.2])
    ei = max_trial_scores(GridPrediction(mean, variance), "ei", eta=0.0, best_f=0.6)
    assert ei[0] > ei[1]


def test_gp_ucb_starts_random_then_follows_the_model(tiny):
    problem, test_grid = tiny()
    firsts = set()
    for seed in range(5):
        problem.seed = seed
        method = make_method("gp_ucb", {"full_refits": 2, "maxiter": 20})
        method.setup(problem)
        firsts.add(method.ask())
    assert len(firsts) > 1  # cold start: a random config
    # after a full curve of the best and the worst config, it recommends the best one
    method = make_method("gp_ucb", {"full_refits": 2, "maxiter": 20})
    method.setup(problem)
    best, worst = int(np.argmax(test_grid.max(1))), int(np.argmin(test_grid.max(1)))
    for config in (best, worst):
        for e in range(1, problem.n_epochs + 1):
            method.tell(config, e, test_grid[config, e - 1])
    assert method.recommend() == best
    assert method.can_continue(method.ask())


def test_box_contains_every_training_tasks_top_three(tiny):
    problem, _ = tiny()
    lower, upper, top = top_config_box(problem.train_grids, problem.X, top_k=3)
    for grid in problem.train_grids:
        for config in np.flatnonzero(config_ranks(grid) < 3):
            assert config in top
            assert np.all(problem.X[config] >= lower) and np.all(problem.X[config] <= upper)
    method = make_method("box_bo", {"full_refits": 2, "maxiter": 20})
    method.setup(problem)
    inside = np.all((problem.X >= lower) & (problem.X <= upper), axis=1)
    np.testing.assert_array_equal(method.allowed, inside)
    assert inside.sum() < problem.n_configs  # the box actually restricts this problem


def test_box_bo_only_queries_inside_the_box(tiny_episode):
    episode = tiny_episode("box_bo", {"full_refits": 2, "maxiter": 20}, budget=15)
    frame = run_episode(episode)
    problem = episode.problem
    lower, upper, _ = top_config_box(problem.train_grids, problem.X, 3)
    inside_ids = problem.config_ids[np.all((problem.X >= lower) & (problem.X <= upper), axis=1)]
    assert set(frame.config_id) <= set(inside_ids.tolist())


def test_recommend_from_all_takes_the_model_and_best_value_the_observations(tiny):
    problem, test_grid = tiny()
    observed_best, model_best = 2, 5
    for rule, expected in (("all", model_best), ("best_value", observed_best)):
        method = make_method("gp_ucb", {"full_refits": 2, "maxiter": 20, "recommend_from": rule})
        method.setup(problem)
        method.tell(observed_best, 1, 0.9)
        method.tell(model_best, 1, 0.5)
        # a model whose favourite (by its best epoch) is not the best observed config
        mean = np.full((problem.n_configs, problem.n_epochs), 0.1)
        mean[model_best, -1] = 0.95
        method.prediction = lambda: GridPrediction(mean, np.full_like(mean, 0.01))
        assert method.recommend() == expected


def test_recommend_from_rejects_an_unknown_rule():
    with pytest.raises(ConfigurationError, match="recommend_from"):
        make_method("gp_ucb", {"recommend_from": "mean"})
