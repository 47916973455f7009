"""The test task's exact posterior (exact.py) and the online model (model.py): dense references,
positive definiteness by construction, and the mechanisms that must act (issue 19, item 3)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transfertune.methods.at2.exact import Offsets, SpectralBasis, TargetTaskPosterior, TaskMixture
from transfertune.methods.at2.kernels import OptiLandTaskKernel
from transfertune.methods.at2.model import (
    ExactAT2, KernelChoice, fit_matern_curves, leave_one_task_out_residuals,
)

D64 = torch.float64


def _spd(k, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(k, k, generator=g, dtype=D64)
    return X @ X.T / k + 0.05 * torch.eye(k, dtype=D64)


T, N_CONFIGS, N_EPOCHS = 3, 4, 3
S_SCALE, NOISE, TEST_NOISE, TEST_MEAN = 0.8, 0.01, 0.03, 0.05
OBS = [(1, 0, 0.3), (1, 1, 0.5), (3, 2, -0.4), (0, 2, 0.1)]


@pytest.fixture
def problem():
    A, KC, KE = _spd(T, 1), _spd(N_CONFIGS, 2), _spd(N_EPOCHS, 3)
    Y = torch.randn(T, N_CONFIGS, N_EPOCHS, dtype=D64, generator=torch.Generator().manual_seed(7))
    means = torch.tensor([0.1, -0.2, 0.3], dtype=D64)
    mix = TaskMixture(A, torch.tensor([0.5, 0.2, 0.3], dtype=D64), torch.tensor(0.15, dtype=D64))
    return A, KC, KE, Y, means, mix


def _posterior(KC, KE, Y, means, obs=OBS):
    post = TargetTaskPosterior(SpectralBasis(KC, KE, Y, means), S_SCALE, NOISE, KC, KE)
    for c, e, y in obs:
        post.add_observation(c, e, y)
    return post


def _gaps(E):
    e = torch.arange(E, dtype=D64)
    return (e[:, None] - e[None, :]).abs()


def _dense_joint(A, KC, KE, Y, means, mix, off):
    """The joint Gaussian of every training cell and every test cell, built cell by cell from the
    model's definition: f* = m* + sum_t w_t f_t + g + offsets, g ~ GP(0, nu s R_C ⊗ K_E)."""
    n, E = KC.shape[0], KE.shape[0]
    Kf = S_SCALE * torch.kron(torch.kron(A, KC), KE)
    W = torch.kron(mix.w[None, :], torch.eye(n * E, dtype=D64))  # test cells from training cells
    scale = torch.diagonal(KC).rsqrt()
    RC = scale[:, None] * KC * scale[None, :]
    own = mix.nu * S_SCALE * torch.kron(RC, KE) + off.mean_var
    if off.curve_var is not None:
        own = own + torch.kron(torch.ones(n, n, dtype=D64), off.curve_kernel(_gaps(E)))
    K = torch.cat([torch.cat([Kf, Kf @ W.T], 1), torch.cat([W @ Kf, W @ Kf @ W.T + own], 1)], 0)
    mu = torch.cat([means.repeat_interleave(n * E), torch.full((n * E,), TEST_MEAN, dtype=D64)])
    return K, mu


@pytest.mark.parametrize("offsets", ["none", "mean", "mean+curve"])
def test_posterior_and_likelihoods_match_the_dense_joint_gp(problem, offsets):
    A, KC, KE, Y, means, mix = problem
    off = Offsets(mean_var=torch.tensor(0.2 if offsets != "none" else 0.0, dtype=D64),
                  curve_var=torch.tensor(0.3, dtype=D64) if "curve" in offsets else None, curve_lengthscale=1.7)
    post = _posterior(KC, KE, Y, means)
    mean, var = post.predict(mix, off, torch.tensor(TEST_MEAN, dtype=D64), TEST_NOISE)
    K, mu = _dense_joint(A, KC, KE, Y, means, mix, off)
    n_train, n_cells = Y.numel(), N_CONFIGS * N_EPOCHS
    observed = list(range(n_train)) + [n_train + c * N_EPOCHS + e for c, e, _ in OBS]
    y = torch.cat([Y.reshape(-1), torch.tensor([v for *_, v in OBS], dtype=D64)])
    noise = torch.cat([torch.full((n_train,), NOISE, dtype=D64), torch.full((len(OBS),), TEST_NOISE, dtype=D64)])
    Koo = K[observed][:, observed] + torch.diag(noise)
    test = list(range(n_train, n_train + n_cells))
    Kto = K[test][:, observed]
    ref_mean = mu[test] + Kto @ torch.linalg.solve(Koo, y - mu[observed])
    ref_var = torch.diagonal(K[test][:, test]) - torch.einsum("ij,ji->i", Kto, torch.linalg.solve(Koo, Kto.T))
    torch.testing.assert_close(mean.reshape(-1), ref_mean, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(var.reshape(-1), ref_var, rtol=1e-7, atol=1e-10)
    train = torch.distributions.MultivariateNormal(mu[:n_train], K[:n_train, :n_train] + NOISE * torch.eye(n_train, dtype=D64))
    joint = torch.distributions.MultivariateNormal(mu[observed], Koo)
    assert float(post.train_log_likelihood(A)) == pytest.approx(float(train.log_prob(Y.reshape(-1))), rel=1e-10)
    test_ll = post.log_likelihood(mix, off, torch.tensor(TEST_MEAN, dtype=D64), TEST_NOISE)
    assert float(test_ll) == pytest.approx(float(joint.log_prob(y) - train.log_prob(Y.reshape(-1))), rel=1e-8)


def test_weight_perturbation_adds_the_training_tasks_deviations_to_the_covariance(problem):
    """With ``weight_var``, the test task given the training grids is the exact conditional plus
    ``delta^T dev(c, e)``, ``delta ~ N(0, weight_var I)``, ``dev_t = E[f_t | Y] - m_t``; the weights'
    posterior mean is ``w + weight_var dev_obs^T K^-1 r``."""
    A, KC, KE, Y, means, mix = problem
    wv = 0.3
    post = _posterior(KC, KE, Y, means)
    test_mean = torch.tensor(TEST_MEAN, dtype=D64)
    mean, var = post.predict(mix, Offsets(weight_var=torch.tensor(wv, dtype=D64)), test_mean, TEST_NOISE)
    K, mu = _dense_joint(A, KC, KE, Y, means, mix, Offsets())
    n_train, n_cells = Y.numel(), N_CONFIGS * N_EPOCHS
    Ktt = K[:n_train, :n_train] + NOISE * torch.eye(n_train, dtype=D64)
    Kf = K[:n_train, :n_train]
    dev = (Kf @ torch.linalg.solve(Ktt, Y.reshape(-1) - mu[:n_train])).reshape(T, n_cells)
    cross = K[n_train:, :n_train]
    mu1 = mu[n_train:] + cross @ torch.linalg.solve(Ktt, Y.reshape(-1) - mu[:n_train])
    Sigma1 = K[n_train:, n_train:] - cross @ torch.linalg.solve(Ktt, cross.T) + wv * dev.T @ dev
    idx = [c * N_EPOCHS + e for c, e, _ in OBS]
    Koo = Sigma1[idx][:, idx] + TEST_NOISE * torch.eye(len(idx), dtype=D64)
    r = torch.tensor([v for *_, v in OBS], dtype=D64) - mu1[idx]
    torch.testing.assert_close(mean.reshape(-1), mu1 + Sigma1[:, idx] @ torch.linalg.solve(Koo, r), rtol=1e-8, atol=1e-10)
    ref_var = torch.diagonal(Sigma1) - torch.einsum("ij,ji->i", Sigma1[:, idx], torch.linalg.solve(Koo, Sigma1[idx]))
    torch.testing.assert_close(var.reshape(-1), ref_var, rtol=1e-7, atol=1e-10)
    weights = post.weights(mix, Offsets(weight_var=torch.tensor(wv, dtype=D64)), test_mean, TEST_NOISE)
    torch.testing.assert_close(weights, mix.w + wv * dev[:, idx] @ torch.linalg.solve(Koo, r), rtol=1e-8, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 6), scale=st.floats(-5, 5), log_nu=st.floats(-8, 2))
def test_task_mixture_is_positive_definite_for_any_weights(seed, T, scale, log_nu):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(T, T, generator=g, dtype=D64)
    A = X @ X.T + 0.1 * torch.eye(T, dtype=D64)
    w = scale * torch.randn(T, generator=g, dtype=D64)  # any weights, negative or summing past 1
    mix = TaskMixture(A, w, torch.tensor(math.exp(log_nu), dtype=D64))
    K = mix.full()
    assert float(torch.linalg.eigvalsh(K).min()) > 0
    assert 0 < float(mix.unexplained) <= 1
    back = TaskMixture.from_matrix(K)
    torch.testing.assert_close(back.w, w, rtol=1e-6, atol=1e-6)
    assert float(back.nu) == pytest.approx(math.exp(log_nu), rel=1e-4, abs=1e-9)


def test_optiland_mixture_follows_eq4_for_the_training_block_and_the_test_weights():
    k = OptiLandTaskKernel(4, u_init=3.0, xi_init=0.5, novelty_init=0.2)
    D = torch.tensor([[0.0, 0.2, 0.4, 0.5], [0.2, 0.0, 0.3, 0.5], [0.4, 0.3, 0.0, 0.5], [0.5, 0.5, 0.5, 0.0]])
    R = torch.ones(4, 4)
    R[3, :3] = R[:3, 3] = 0.0
    k.set_statistics(D, R)
    mix = k.mixture()
    torch.testing.assert_close(mix.A, torch.exp(-D[:3, :3] / 0.5**2))  # complete grids: gamma = 1
    torch.testing.assert_close(mix.w, torch.full((3,), 1 / 3))  # cold start: D = 1/2 everywhere
    assert float(mix.nu) == pytest.approx(0.2)
    # matched observations separate the training tasks: weights proportional to Eq. 4's row
    D[3, :3] = D[:3, 3] = torch.tensor([0.05, 0.3, 0.6])
    R[3, :3] = R[:3, 3] = 0.01
    k.set_statistics(D, R)
    gamma = 3.0 / (1 + 2.0 * 0.01)
    row = torch.exp(-torch.tensor([0.05, 0.3, 0.6]) / (0.5 * gamma) ** 2)
    torch.testing.assert_close(k.mixture().w, row / row.sum())
    # a larger U trusts the few matches less: flatter weights
    flat = OptiLandTaskKernel(4, u_init=30.0, xi_init=0.5)
    flat.set_statistics(D, R)
    assert float(flat.mixture().w.max()) < float(k.mixture().w.max())
    K = k.matrix().detach()
    assert float(torch.linalg.eigvalsh(K).min()) > 0


def test_leave_one_task_out_residuals_on_the_others_best_configs():
    Y = torch.zeros(3, 4, 2, dtype=D64)
    Y[0] = torch.tensor([[0.1, 0.2], [0.5, 0.9], [0.3, 0.4], [0.0, 0.1]])
    Y[1] = Y[0] + 0.1
    Y[2] = Y[0] * 2
    r = leave_one_task_out_residuals(Y, k=2)
    # every task ranks configs 1 > 2 > 0 > 3: the top 2 are configs 1 and 2, in rank order
    torch.testing.assert_close(r[0], Y[0, [1, 2]] - (Y[1, [1, 2]] + Y[2, [1, 2]]) / 2)
    torch.testing.assert_close(r[1], Y[1, [1, 2]] - (Y[0, [1, 2]] + Y[2, [1, 2]]) / 2)


def test_fit_matern_curves_recovers_a_known_variance_and_length_scale():
    E, var, length = 40, 0.04, 8.0
    gaps = _gaps(E)
    K = Offsets(curve_var=torch.tensor(var, dtype=D64), curve_lengthscale=length).curve_kernel(gaps)
    draws = torch.distributions.MultivariateNormal(torch.zeros(E, dtype=D64), K + 1e-8 * torch.eye(E, dtype=D64))
    torch.manual_seed(0)
    curves = draws.sample((200,))
    v, ell = fit_matern_curves(curves, gaps, steps=300)
    assert v == pytest.approx(var, rel=0.25) and ell == pytest.approx(length, rel=0.25)


# ---------------------------------------------------------------- the online model on a small problem
@pytest.fixture
def small(synthetic_db):
    from transfertune.core.catalog import ObservationCatalog
    from transfertune.methods.runner import make_problem

    catalog = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    problem, grid = make_problem(catalog, catalog.pairs[0], budget=20, seed=0)
    return problem, grid


def _model(problem, train_grids=None, **kwargs):
    torch.manual_seed(0)
    grids = problem.train_grids if train_grids is None else train_grids
    return ExactAT2(KernelChoice(), problem.space, problem.X, grids, fit_steps=20, **kwargs)


def test_the_fidelity_kernel_is_evaluated_on_epochs_one_to_E(small):
    problem, _ = small
    model = _model(problem)
    E = problem.n_epochs
    np.testing.assert_array_equal(model.epochs.numpy(), np.arange(1, E + 1))
    k = model.model.product.fidelity
    a, b = float(k.alpha), float(k.beta)
    acc_curve = lambda e, f: 1 + (b / (e + f + b)) ** a - (b / (e + b)) ** a - (b / (f + b)) ** a  # noqa: E731
    assert float(model.posterior.KE[0, 0]) == pytest.approx(acc_curve(1, 1), rel=1e-10)
    assert float(model.posterior.KE[0, E - 1]) == pytest.approx(acc_curve(1, E), rel=1e-10)


def test_the_value_told_for_epoch_e_lands_in_cell_e(small):
    problem, grid = small
    model = _model(problem, online_steps=0)
    with torch.no_grad():
        model.test_noise_floor = torch.zeros_like(model.test_noise_floor)  # no floor: interpolate the observation
        model.raw_test_noise.fill_(math.log(1e-8))
    model.observe(2, 3, 0.123)
    assert model.posterior.obs_c == [2] and model.posterior.obs_e == [2]
    assert float(model.test_values[2, 2]) == 0.123 and bool(model.test_observed[2, 2])
    mean, _ = model.predict()
    assert mean[2, 2] == pytest.approx(0.123, abs=1e-5)
    assert abs(mean[2, 3] - 0.123) > 1e-4 or abs(mean[2, 1] - 0.123) > 1e-4


def test_the_test_tasks_distances_and_ratios_are_recomputed_from_its_observations(small):
    problem, grid = small
    model = _model(problem, online_steps=0)
    kernel = model.task_kernel
    assert torch.all(kernel.distance[model.T, : model.T] == 0.5) and torch.all(kernel.ratio[model.T, : model.T] == 0)
    cells = [(0, 1), (0, 2), (3, 1), (5, 1)]
    for c, e in cells:
        model.observe(c, e, float(grid[c, e - 1]))
    n, E = grid.shape
    torch.testing.assert_close(kernel.ratio[model.T, : model.T], torch.full((model.T,), len(cells) / (n * E), dtype=D64))
    assert torch.all(kernel.distance[model.T, : model.T] != 0.5)


def test_a_test_task_that_copies_a_training_task_puts_its_weight_on_it(small):
    problem, _ = small
    for k in range(problem.train_grids.shape[0]):
        copy = problem.train_grids[k]
        model = _model(problem)
        assert np.allclose(model.weights().numpy(), 1 / model.T)  # cold start: equal weights
        rng = np.random.default_rng(k)
        for c in rng.choice(problem.n_configs, 6, replace=False):
            for e in (1, 2):
                model.observe(int(c), e, float(copy[c, e - 1]))
        weights = model.weights().numpy()
        assert int(np.argmax(weights)) == k, weights
        assert weights[k] > 1 / model.T + 0.1, weights


def test_online_learning_moves_the_task_parameters_and_raises_the_joint_likelihood(small):
    problem, grid = small
    model = _model(problem, online_steps=0)
    for c, e in [(0, 1), (0, 2), (3, 1), (5, 1), (5, 2), (7, 1)]:
        model.observe(c, e, float(grid[c, e - 1]))
    before = float(model.joint_log_likelihood())
    start = {name: p.detach().clone() for name, p in model.task_kernel.named_parameters()}
    noise = float(model.test_noise)
    model.observe_many([], [], [], refit_steps=30)
    assert float(model.joint_log_likelihood()) > before
    moved = {name for name, p in model.task_kernel.named_parameters() if not torch.equal(p.detach(), start[name])}
    assert {"raw_xi", "raw_u"} <= moved and "raw_novelty" not in moved
    assert float(model.test_noise) != noise


def test_cold_start_variances_match_the_training_tasks_residuals(small):
    problem, _ = small
    model = _model(problem, curve_var=0.01)
    r = leave_one_task_out_residuals(model.Y, model.cold_start_configs, model.mixture().A.detach())
    shared = r.mean(1)
    level = shared.mean(1, keepdim=True)
    specific = r - shared[:, None, :]
    s, KE = model.posterior.s, model.posterior.KE
    assert float(model.mixture().nu) == pytest.approx(float((specific**2).mean() / (s * torch.diagonal(KE)).mean()), rel=1e-6)
    off = model.offsets()
    assert float(off.mean_var) == pytest.approx(float((level**2).mean()), rel=1e-6)
    assert float(off.curve_var) > 0 and float(off.curve_lengthscale) > 0


def _rank_best(Y, k):
    ranks = Y.max(dim=2).values.argsort(dim=1, descending=True).argsort(dim=1).to(Y.dtype)
    return ranks.mean(0).argsort()[:k]


def test_leave_one_task_out_residuals_weigh_the_others_by_similarity():
    """A task held out among a clone and a stranger: equal weights leave half the stranger's
    difference as residual; similarity on the clone leaves none."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(6, 3, generator=g, dtype=D64)
    Y = torch.stack([base, base + 0.0, 1.0 - base])  # task 1 copies task 0, task 2 is reversed
    equal = leave_one_task_out_residuals(Y, 2)
    sim = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.5, 0.5, 1.0]], dtype=D64)
    weighted = leave_one_task_out_residuals(Y, 2, sim)
    assert weighted[0].abs().max() < 1e-12 and weighted[1].abs().max() < 1e-12
    assert equal[0].abs().max() > 0.05
    # equal weights: the held-out task against the plain mean of the others
    assert torch.allclose(equal[0], (Y[0] - (Y[1] + Y[2]) / 2)[[int(c) for c in _rank_best(Y[[1, 2]], 2)]])


def test_weight_directions_give_the_landscape_conditional_on_a_draw_of_the_weights(problem):
    """``mean + G^T z`` is ``E[f | y, delta]`` for ``delta = E[delta | y] + L z``: checked against
    the dense joint Gaussian of (f, delta, y), where f = mu1 + dev^T delta + rest."""
    A, KC, KE, Y, means, mix = problem
    wv = torch.tensor(0.3, dtype=D64)
    off = Offsets(mean_var=torch.tensor(0.1, dtype=D64), weight_var=wv)
    post = _posterior(KC, KE, Y, means)
    test_mean = torch.tensor(TEST_MEAN, dtype=D64)
    mean, _ = post.predict(mix, off, test_mean, TEST_NOISE)
    G = post.weight_directions(mix, off, TEST_NOISE)
    # dense reference: the conditional of the test grid given the training grids, then delta
    K, mu = _dense_joint(A, KC, KE, Y, means, mix, Offsets(mean_var=torch.tensor(0.1, dtype=D64)))
    n_train, n_cells = Y.numel(), N_CONFIGS * N_EPOCHS
    Ktt = K[:n_train, :n_train] + NOISE * torch.eye(n_train, dtype=D64)
    dev = (K[:n_train, :n_train] @ torch.linalg.solve(Ktt, Y.reshape(-1) - mu[:n_train])).reshape(T, n_cells)
    cross = K[n_train:, :n_train]
    mu1 = mu[n_train:] + cross @ torch.linalg.solve(Ktt, Y.reshape(-1) - mu[:n_train])
    rest = K[n_train:, n_train:] - cross @ torch.linalg.solve(Ktt, cross.T)
    # joint of (f cells, delta): f = mu1 + dev^T delta + rest-part
    S_ff = rest + wv * dev.T @ dev
    S_fd = wv * dev.T  # (cells, T)
    idx = [c * N_EPOCHS + e for c, e, _ in OBS]
    y = torch.tensor([v for *_, v in OBS], dtype=D64)
    Kyy = S_ff[idx][:, idx] + TEST_NOISE * torch.eye(len(idx), dtype=D64)
    gain_d = torch.linalg.solve(Kyy, S_fd[idx]).T  # (T, m)
    mu_d = gain_d @ (y - mu1[idx])
    cov_d = wv * torch.eye(T, dtype=D64) - gain_d @ S_fd[idx]
    cov_fd = S_fd - S_ff[:, idx] @ torch.linalg.solve(Kyy, S_fd[idx])
    L = torch.linalg.cholesky(cov_d)
    z = torch.tensor([0.7, -1.2, 0.4], dtype=D64)
    delta = mu_d + L @ z
    ref = mean.reshape(-1) + cov_fd @ torch.linalg.solve(cov_d, delta - mu_d)
    torch.testing.assert_close(mean.reshape(-1) + torch.einsum("tc,t->c", G.reshape(T, -1), z), ref, rtol=1e-8, atol=1e-10)


def test_posterior_covariance_between_cells_matches_the_predicted_variance_and_a_dense_reference(problem):
    A, KC, KE, Y, means, mix = problem
    off = Offsets(mean_var=torch.tensor(0.1, dtype=D64), weight_var=torch.tensor(0.3, dtype=D64))
    post = _posterior(KC, KE, Y, means)
    _, var = post.predict(mix, off, torch.tensor(TEST_MEAN, dtype=D64), TEST_NOISE)
    cells = [(c, e) for c in range(N_CONFIGS) for e in range(N_EPOCHS)]
    cov = post.covariance(mix, off, TEST_NOISE, cells, cells)
    torch.testing.assert_close(torch.diagonal(cov), var.reshape(-1), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(cov, cov.T, rtol=1e-8, atol=1e-10)
    # dense reference, as in the weight-perturbation test: Sigma1 conditioned on the observations
    K, mu = _dense_joint(A, KC, KE, Y, means, mix, Offsets(mean_var=torch.tensor(0.1, dtype=D64)))
    n_train = Y.numel()
    Ktt = K[:n_train, :n_train] + NOISE * torch.eye(n_train, dtype=D64)
    dev = (K[:n_train, :n_train] @ torch.linalg.solve(Ktt, Y.reshape(-1) - mu[:n_train])).reshape(T, -1)
    cross = K[n_train:, :n_train]
    Sigma1 = K[n_train:, n_train:] - cross @ torch.linalg.solve(Ktt, cross.T) + 0.3 * dev.T @ dev
    idx = [c * N_EPOCHS + e for c, e, _ in OBS]
    Koo = Sigma1[idx][:, idx] + TEST_NOISE * torch.eye(len(idx), dtype=D64)
    ref = Sigma1 - Sigma1[:, idx] @ torch.linalg.solve(Koo, Sigma1[idx])
    torch.testing.assert_close(cov, ref, rtol=1e-7, atol=1e-10)
    # a sub-block between two different cell lists
    torch.testing.assert_close(post.covariance(mix, off, TEST_NOISE, cells[:3], cells[5:9]), ref[:3, 5:9], rtol=1e-7, atol=1e-10)


def test_predict_returns_the_posterior_standard_deviation(small):
    """``ExactAT2.predict``'s second output is the square root of the posterior variance."""
    problem, grid = small
    model = _model(problem, online_steps=0)
    for c, e in [(0, 1), (3, 1), (3, 2)]:
        model.observe(c, e, float(grid[c, e - 1]))
    _, std = model.predict()
    with torch.no_grad():
        _, var = model.posterior.predict(model.mixture(), model.offsets(), model.test_mean, model.test_noise)
    np.testing.assert_allclose(std, np.sqrt(var.numpy()), rtol=1e-12)
    assert not np.allclose(std, var.numpy())


def test_the_weight_perturbation_alone_identifies_a_copied_task(small, monkeypatch):
    """OptiLand's distances frozen at their cold start (equal mixture weights): the observations of
    a copy of training task k move the weights towards k through the perturbation alone, with its
    default prior variance 1 / T^2."""
    problem, _ = small
    monkeypatch.setattr(ExactAT2, "_set_optiland_statistics", lambda self: None)
    for k in range(problem.train_grids.shape[0]):
        model = _model(problem, online_steps=0)
        assert float(model.offsets().weight_var) == pytest.approx(1 / model.T**2)
        assert np.allclose(model.mixture().w.detach().numpy(), 1 / model.T)
        rng = np.random.default_rng(k)
        for c in rng.choice(problem.n_configs, 12, replace=False):
            for e in range(1, problem.n_epochs + 1):
                model.observe(int(c), e, float(problem.train_grids[k][c, e - 1]))
        assert np.allclose(model.mixture().w.detach().numpy(), 1 / model.T)  # the mixture did not move
        weights = model.weights().numpy()
        assert int(np.argmax(weights)) == k and weights[k] > 1 / model.T + 0.1, weights
