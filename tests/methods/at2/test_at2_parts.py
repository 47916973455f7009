"""AT2 parts: kernels (shapes, PSD, known values), exact Kronecker inference against a dense
GP, gradients, OptiLand statistics, Max-Trial-GP-UCB, and the method on a small problem."""

import numpy as np
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.exact import KroneckerMLL, TargetTaskPosterior
from transfertune.methods.at2.kernels import (
    CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS, AccCurveKernel, OptiLandTaskKernel,
    make_config_kernel, make_fidelity_kernel, make_task_kernel, optiland_statistics,
)
from transfertune.methods.at2.method import anytime_delay, epochs_to_peak, max_trial_ucb
from tests.conftest import HYPERREC_SPACE

D64 = torch.float64


def _spd(k, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(k, k, generator=g, dtype=D64)
    return X @ X.T / k + 0.05 * torch.eye(k, dtype=D64)


def test_kronecker_mll_matches_dense_gaussian_and_has_exact_gradients():
    A, B, C = _spd(3, 0), _spd(4, 1), _spd(5, 2)
    Y = torch.randn(3, 4, 5, dtype=D64, generator=torch.Generator().manual_seed(3))
    s, noise = torch.tensor(0.7, dtype=D64), torch.tensor(0.05, dtype=D64)
    K = s * torch.kron(torch.kron(A, B), C) + noise * torch.eye(60, dtype=D64)
    dense = torch.distributions.MultivariateNormal(torch.zeros(60, dtype=D64), K).log_prob(Y.reshape(-1))
    assert float(KroneckerMLL.apply(A, B, C, s, noise, Y)) == pytest.approx(float(dense), rel=1e-10)
    args = [t.clone().requires_grad_() for t in (A, B, C, s, noise, Y)]
    sym = lambda A, B, C, s, n, Y: KroneckerMLL.apply((A + A.T) / 2, (B + B.T) / 2, (C + C.T) / 2, s, n, Y)
    assert torch.autograd.gradcheck(sym, args)


def test_test_task_posterior_matches_dense_conditioning():
    T, n, E = 2, 4, 3
    KT = _spd(T + 1, 4)
    KC, KE = _spd(n, 5), _spd(E, 6)
    s, noise = 0.8, 0.01
    g = torch.Generator().manual_seed(7)
    Y = torch.randn(T, n, E, dtype=D64, generator=g)
    means = torch.tensor([0.1, -0.2], dtype=D64)
    post = TargetTaskPosterior(KT[:T, :T], KC, KE, s, noise, Y, means)
    obs = [(1, 0, 0.3), (1, 1, 0.5), (3, 2, -0.4)]
    for c, e, y in obs:
        post.add_observation(c, e, y)
    mean, var = post.predict(KT[T, :T], KT[T, T], torch.tensor(0.05, dtype=D64))
    # dense reference: all T+1 task grids, condition on training cells + observed test cells
    K = s * torch.kron(torch.kron(KT, KC), KE)
    N = (T + 1) * n * E
    mu = torch.cat([means.repeat_interleave(n * E), torch.full((n * E,), 0.05, dtype=D64)])
    idx_obs = list(range(T * n * E)) + [T * n * E + c * E + e for c, e, _ in obs]
    y_obs = torch.cat([Y.reshape(-1), torch.tensor([y for *_, y in obs], dtype=D64)])
    Koo = K[idx_obs][:, idx_obs] + noise * torch.eye(len(idx_obs), dtype=D64)
    test_idx = list(range(T * n * E, N))
    Kto = K[test_idx][:, idx_obs]
    ref_mean = mu[test_idx] + Kto @ torch.linalg.solve(Koo, y_obs - mu[idx_obs])
    ref_var = torch.diagonal(K[test_idx][:, test_idx]) - torch.einsum("ij,ji->i", Kto, torch.linalg.solve(Koo, Kto.T))
    torch.testing.assert_close(mean.reshape(-1), ref_mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(var.reshape(-1), ref_var, rtol=1e-6, atol=1e-8)
    ll = post.log_likelihood(KT[T, :T], KT[T, T], torch.tensor(0.05, dtype=D64))
    assert torch.isfinite(ll)


def _dense_test_conditional(KT, KC, KE, s, noise, Y, means, test_mean):
    """Dense reference of the test grid given the training grids: its mean ``mu1``, covariance
    ``Sigma1`` and the training tasks' noise-free posterior means minus their means ``(T, n*E)``."""
    T, n, E = Y.shape
    K = s * torch.kron(torch.kron(KT, KC), KE)
    tr, te = slice(0, T * n * E), slice(T * n * E, (T + 1) * n * E)
    Ktt = K[tr, tr] + noise * torch.eye(T * n * E, dtype=D64)
    alpha = torch.linalg.solve(Ktt, Y.reshape(-1) - means.repeat_interleave(n * E))
    Sigma1 = K[te, te] - K[te, tr] @ torch.linalg.solve(Ktt, K[tr, te])
    return test_mean + K[te, tr] @ alpha, Sigma1, (K[tr, tr] @ alpha).reshape(T, n * E)


def _dense_condition(mu1, Sigma1, obs, E, noise):
    """Condition the dense test grid on ``obs`` [(c, e, y)]: posterior mean and variance, and the
    observations' marginal (its mean and covariance)."""
    idx = [c * E + e for c, e, _ in obs]
    Koo = Sigma1[idx][:, idx] + noise * torch.eye(len(idx), dtype=D64)
    r = torch.tensor([y for *_, y in obs], dtype=D64) - mu1[idx]
    mean = mu1 + Sigma1[:, idx] @ torch.linalg.solve(Koo, r)
    var = torch.diagonal(Sigma1) - torch.einsum("ij,ji->i", Sigma1[:, idx], torch.linalg.solve(Koo, Sigma1[idx]))
    return mean, var, torch.distributions.MultivariateNormal(mu1[idx], Koo)


def test_weight_var_adds_uncertain_weights_on_the_training_tasks_deviations():
    """With ``weight_var``, the test task given the training grids is the GP of the exact
    conditional plus ``delta^T dev(c, e)``, ``delta ~ N(0, weight_var I)`` and ``dev_t`` training
    task t's posterior mean minus its constant mean; checked against dense conditioning."""
    T, n, E = 2, 4, 3
    KT = _spd(T + 1, 4)
    KC, KE = _spd(n, 5), _spd(E, 6)
    s, noise, wv = 0.8, 0.01, 0.3
    Y = torch.randn(T, n, E, dtype=D64, generator=torch.Generator().manual_seed(7))
    means = torch.tensor([0.1, -0.2], dtype=D64)
    obs = [(1, 0, 0.3), (1, 1, 0.5), (3, 2, -0.4)]
    post = TargetTaskPosterior(KT[:T, :T], KC, KE, s, noise, Y, means, weight_var=wv)
    for c, e, y in obs:
        post.add_observation(c, e, y)
    test_mean = torch.tensor(0.05, dtype=D64)
    # dense reference: the test grid's conditional prior given the training grids, widened by wv D D^T
    mu1, Sigma1, deviations = _dense_test_conditional(KT, KC, KE, s, noise, Y, means, test_mean)
    ref_mean, ref_var, marginal = _dense_condition(mu1, Sigma1 + wv * deviations.T @ deviations, obs, E, noise)
    torch.testing.assert_close(post.deviations.reshape(T, -1), deviations, rtol=1e-8, atol=1e-8)
    mean, var = post.predict(KT[T, :T], KT[T, T], test_mean)
    torch.testing.assert_close(mean.reshape(-1), ref_mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(var.reshape(-1), ref_var, rtol=1e-6, atol=1e-8)
    # the widened prior is what the evidence sees too
    ll = float(post.log_likelihood(KT[T, :T], KT[T, T], test_mean))
    assert ll == pytest.approx(float(marginal.log_prob(torch.tensor([y for *_, y in obs], dtype=D64))), rel=1e-8)
    cold = [TargetTaskPosterior(KT[:T, :T], KC, KE, s, noise, Y, means, weight_var=v).predict(KT[T, :T], KT[T, T], test_mean)[1]
            for v in (0.0, wv)]
    torch.testing.assert_close(cold[1] - cold[0], wv * (deviations**2).sum(0).reshape(n, E), rtol=1e-8, atol=1e-10)


def test_curve_var_adds_a_learning_curve_offset_shared_by_the_test_tasks_configs():
    """``curve_var`` adds ``curve_var * KE / mean(diag KE)`` between any two test cells (any configs),
    checked against dense conditioning; an observation of one config moves another's forecast at
    the same epoch by the shared offset."""
    T, n, E = 2, 4, 3
    KT = _spd(T + 1, 4)
    KC, KE = torch.eye(n, dtype=D64), _spd(E, 6)  # configs independent: only the offset links them
    s, noise, cv = 0.8, 0.01, 0.5
    Y = torch.randn(T, n, E, dtype=D64, generator=torch.Generator().manual_seed(7))
    means = torch.tensor([0.1, -0.2], dtype=D64)
    obs = [(1, 0, 0.3), (1, 1, 0.5), (3, 2, -0.4)]
    test_mean = torch.tensor(0.05, dtype=D64)
    preds = []
    for v in (0.0, cv):
        post = TargetTaskPosterior(KT[:T, :T], KC, KE, s, noise, Y, means, curve_var=v)
        for c, e, y in obs:
            post.add_observation(c, e, y)
        preds.append(post.predict(KT[T, :T], KT[T, T], test_mean))
    mu1, Sigma1, _ = _dense_test_conditional(KT, KC, KE, s, noise, Y, means, test_mean)
    offset = torch.kron(torch.ones(n, n, dtype=D64), KE / torch.diagonal(KE).mean())
    ref_mean, ref_var, _ = _dense_condition(mu1, Sigma1 + cv * offset, obs, E, noise)
    torch.testing.assert_close(preds[1][0].reshape(-1), ref_mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(preds[1][1].reshape(-1), ref_var, rtol=1e-6, atol=1e-8)
    # config 0 was never observed: the offset learned from configs 1 and 3 moves its forecast
    assert float((preds[1][0][0] - preds[0][0][0]).abs().max()) > 1e-3


def test_optiland_statistics_known_case():
    # task 1 is task 0 scaled and shifted: same landscape, distance 0
    base = torch.rand(5, 4, dtype=D64, generator=torch.Generator().manual_seed(0))
    grids = torch.stack([base, 3 * base + 1, torch.rand(5, 4, dtype=D64)])
    observed = torch.ones_like(grids, dtype=torch.bool)
    observed[2] = False
    observed[2, 0, 0] = True  # one match only -> distance 1/2
    D, R = optiland_statistics(grids, observed)
    assert float(D[0, 1]) == pytest.approx(0.0, abs=1e-12) and float(R[0, 1]) == 1.0
    assert float(D[0, 2]) == 0.5 and float(R[0, 2]) == pytest.approx(1 / 20)
    assert 0 <= float(D.max()) <= 1


def test_optiland_kernel_cold_start_boost():
    k = OptiLandTaskKernel(2, u_init=4.0, xi_init=1.0)
    D = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    k.set_statistics(D, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    cold = float(k.matrix()[0, 1])
    assert cold == pytest.approx(np.exp(-0.5 / 16), rel=1e-5)  # gamma = U when nothing matched
    k.set_statistics(D, torch.ones(2, 2))
    assert float(k.matrix()[0, 1]) == pytest.approx(np.exp(-0.5), rel=1e-5)  # gamma = 1 when all matched


def test_acc_curve_closed_form_matches_the_integral():
    k = AccCurveKernel()
    a, b = float(k.alpha), float(k.beta)
    e1, e2 = 3.0, 7.0
    lam = np.random.default_rng(0).gamma(a, 1 / b, size=400_000)  # Gamma(alpha, rate beta)
    mc = np.mean((1 - np.exp(-lam * e1)) * (1 - np.exp(-lam * e2)))
    value = float(k(torch.tensor([[e1]]), torch.tensor([[e2]])).to_dense())
    assert value == pytest.approx(mc, abs=3e-3)


@pytest.mark.parametrize("name", TASK_KERNELS)
def test_task_kernels_shapes_and_psd(name):
    k = make_task_kernel(name, 5)
    K = k.matrix().detach()
    assert K.shape == (5, 5)
    if name != "optiland":  # OptiLand is not PSD in general (the posterior guards against it)
        assert torch.linalg.eigvalsh((K + K.T) / 2).min() > -1e-5


@pytest.mark.parametrize("name", CONFIG_KERNELS)
def test_config_kernels_on_the_hyperrec_space(name):
    space = SearchSpace.from_yaml(HYPERREC_SPACE)
    X = torch.as_tensor(space.encode(space.sample(12, seed=1)), dtype=torch.float32)
    k = make_config_kernel(name, space)
    K = k(X, X).to_dense() if hasattr(k(X, X), "to_dense") else k(X, X)
    assert K.shape == (12, 12)
    assert torch.linalg.eigvalsh((K + K.T).double() / 2).min() > -1e-4
    K.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in k.parameters())


@pytest.mark.parametrize("name", FIDELITY_KERNELS)
def test_fidelity_kernels(name):
    k = make_fidelity_kernel(name, 10)
    e = torch.arange(1, 11, dtype=torch.float32)[:, None]
    K = k(e, e)
    K = K.to_dense() if hasattr(K, "to_dense") else K
    assert K.shape == (10, 10) and torch.linalg.eigvalsh(K.double()).min() > -1e-5


def test_max_trial_ucb_picks_the_best_bound_over_any_epoch_among_allowed():
    mean = np.array([[0.1, 0.9], [0.5, 0.6], [0.95, 0.2]])
    std = np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    assert max_trial_ucb(mean, std, 0.0, np.array([True, True, True])) == 2
    assert max_trial_ucb(mean, std, 0.25, np.array([True, True, True])) == 1
    assert max_trial_ucb(mean, std, 0.25, np.array([True, False, False])) == 0


def test_max_trial_ucb_keeps_the_incumbent_within_the_switch_margin():
    mean = np.array([[0.80, 0.90], [0.85, 0.92]])
    std = np.zeros_like(mean)
    allowed = np.array([True, True])
    assert max_trial_ucb(mean, std, 0.25, allowed, incumbent=0) == 1  # no margin: the paper's argmax
    assert max_trial_ucb(mean, std, 0.25, allowed, incumbent=0, margin=0.05) == 0
    assert max_trial_ucb(mean, std, 0.25, allowed, incumbent=0, margin=0.01) == 1  # a clear lead wins
    assert max_trial_ucb(mean, std, 0.25, np.array([False, True]), incumbent=0, margin=1.0) == 1  # finished


def test_epochs_to_peak_counts_the_queries_to_the_best_reachable_epoch():
    mean = np.array([[0.1, 0.5, 0.9, 0.7]])
    std = np.array([[0.0, 0.0, 0.0, 2.0]])
    assert epochs_to_peak(mean, std, 0.0, 0, trained=0, remaining=10) == 3  # peak at epoch 3
    assert epochs_to_peak(mean, std, 0.25, 0, trained=0, remaining=10) == 4  # the bonus moves it to epoch 4
    assert epochs_to_peak(mean, std, 0.25, 0, trained=1, remaining=2) == 2  # epoch 4 is out of reach
    assert epochs_to_peak(mean, std, 0.0, 0, trained=3, remaining=1) == 1  # past the peak: one more epoch


def test_min_novelty_floors_the_test_tasks_residual_variance():
    r = 0.6
    A = torch.tensor([[1.0, r], [r, 1.0]], dtype=D64)
    KC, KE = _spd(3, 1), _spd(2, 2)
    Y = torch.zeros(2, 3, 2, dtype=D64)
    loo = TargetTaskPosterior(A, KC, KE, 1.0, 0.01, Y, torch.zeros(2, dtype=D64), min_novelty="loo")
    assert loo.min_novelty == pytest.approx(1 - r**2)  # each training task given the other
    a_self = torch.tensor(1.0, dtype=D64)
    for post, floor in ((loo, 1 - r**2), (TargetTaskPosterior(A, KC, KE, 1.0, 0.01, Y, torch.zeros(2, dtype=D64)), 1e-4)):
        a, _ = post.safe_row(torch.tensor([0.99, 0.99], dtype=D64), a_self)  # as similar as OptiLand may say
        schur = a_self - a @ torch.linalg.solve(A, a)
        assert float(schur) == pytest.approx(floor, rel=1e-6)
        a, _ = post.safe_row(torch.tensor([0.1, 0.0], dtype=D64), a_self)  # a row that is already PSD is kept
        assert torch.allclose(a, torch.tensor([0.1, 0.0], dtype=D64))


def test_prior_weights_rebuild_the_test_tasks_prior_mean_from_the_training_tasks():
    T, n, E = 3, 4, 3
    A, KC, KE = _spd(T, 8), _spd(n, 9), _spd(E, 10)
    s, noise = 0.8, 0.01
    Y = torch.randn(T, n, E, dtype=D64, generator=torch.Generator().manual_seed(11))
    means = torch.tensor([0.1, -0.2, 0.3], dtype=D64)
    # the training tasks' posterior means on their own grids, dense
    K = s * torch.kron(torch.kron(A, KC), KE)
    fitted = (K @ torch.linalg.solve(K + noise * torch.eye(T * n * E, dtype=D64), (Y - means[:, None, None]).reshape(-1))).reshape(T, n, E)
    test_mean, a_self = torch.tensor(0.05, dtype=D64), torch.tensor(1.0, dtype=D64)
    for convex in (False, True):
        post = TargetTaskPosterior(A, KC, KE, s, noise, Y, means, convex=convex)
        for a in (torch.tensor([0.3, -0.1, 0.2], dtype=D64), torch.tensor([0.95, 0.95, 0.95], dtype=D64)):  # kept, shrunk
            weights, unexplained = post.prior_weights(a, a_self)
            prior_mean, _ = post.predict(a, a_self, test_mean)
            torch.testing.assert_close(prior_mean - test_mean, torch.einsum("t,tce->ce", weights, fitted), rtol=1e-8, atol=1e-10)
        assert unexplained == pytest.approx(post.min_novelty)  # the shrunk row sits on the floor
        # the amplified sum (weights over 1) is what `convex` turns into an average
        assert (float(weights.sum()) == pytest.approx(1.0)) if convex else float(weights.sum()) > 1.2
    kept, _ = post.safe_row(torch.tensor([0.3, -0.1, 0.2], dtype=D64), a_self)
    _, unexplained = post.prior_weights(kept, a_self)
    assert unexplained == pytest.approx(float(1 - kept @ torch.linalg.solve(A, kept)), rel=1e-8)


def test_max_trial_ucb_scores_only_the_epochs_the_budget_can_reach():
    # config 0 is trained to epoch 3 and good there; config 1 is fresh and only good at epoch 4
    mean = np.array([[0.5, 0.6, 0.7, 0.72], [0.1, 0.2, 0.3, 0.9]])
    std = np.zeros_like(mean)
    allowed = np.array([True, True])
    assert max_trial_ucb(mean, std, 0.0, allowed) == 1
    # one query left: config 0 can reach epoch 4, config 1 only epoch 1
    assert max_trial_ucb(mean, std, 0.0, allowed, reachable=np.array([4, 1])) == 0
    # plenty left: both reach their last epoch and the plain rule is back
    assert max_trial_ucb(mean, std, 0.0, allowed, reachable=np.array([4, 4])) == 1


def test_anytime_delay_weighs_the_best_value_over_every_remaining_query():
    trained = np.array([20, 0])
    length = np.array([75, 75])
    mean = np.zeros((2, 75))
    mean[0] = np.minimum(np.arange(1, 76), 40) / 40 * 0.80  # last config: rises to 0.80 at epoch 40
    mean[1] = np.minimum(np.arange(1, 76), 70) / 70 * 0.81  # the pick: 0.01 higher, but only at epoch 70
    incumbent = 0.40  # config 0 at epoch 20
    # 80 queries left: the last config reaches 0.80 within 20 of them, the pick 0.81 only after
    # 70; waiting forecasts the higher best value over the queries left, and the best plan trains
    # the last config to its plateau first (about 20 epochs), as the pick still fits after it.
    delay = anytime_delay(mean, 0, 1, trained, length, remaining=80, incumbent=incumbent)
    assert delay >= 20
    # a pick better from its first epochs is started at once
    mean[1] = 0.9
    assert anytime_delay(mean, 0, 1, trained, length, remaining=80, incumbent=incumbent) == 0
    # the incumbent counts: a last config forecast never to beat it gains nothing by waiting,
    # and ties go to switching now
    mean[0] = 0.3
    mean[1] = 0.3
    assert anytime_delay(mean, 0, 1, trained, length, remaining=80, incumbent=incumbent) == 0
    # the plans stop at the end of the last config's trial
    mean[0] = 1.0
    trained_end = np.array([74, 0])
    assert anytime_delay(mean, 0, 1, trained_end, length, remaining=80, incumbent=incumbent) == 1


def test_anytime_delay_by_brute_force():
    """Every plan's average best value, simulated query by query, against the vectorised argmax."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        E = 12
        mean = rng.random((2, E))
        trained = rng.integers(0, E, size=2)
        length = np.array([E, rng.integers(trained[1] + 1, E + 1)])
        remaining = int(rng.integers(1, 15))
        incumbent = float(rng.random())
        scores = []
        for d in range(0, min(remaining, length[0] - trained[0]) + 1):
            best, seen, total = incumbent, list(trained), 0.0
            for t in range(remaining):
                config = 0 if t < d else 1
                if seen[config] < length[config]:
                    best = max(best, mean[config, seen[config]])
                    seen[config] += 1
                total += best
            scores.append(total / remaining)
        assert anytime_delay(mean, 0, 1, trained, length, remaining, incumbent) == int(np.argmax(scores))
