"""AT2 parts: kernels (shapes, PSD, known values), the Kronecker likelihood against a dense
Gaussian with its gradients, OptiLand statistics, Max-Trial-GP-UCB. The test task's posterior is
in test_at2_posterior.py."""

import numpy as np
import pytest
import torch

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.exact import KroneckerMLL
from transfertune.methods.at2.kernels import (
    CONFIG_KERNELS, FIDELITY_KERNELS, TASK_KERNELS, AccCurveKernel, OptiLandTaskKernel,
    make_config_kernel, make_fidelity_kernel, make_task_kernel, optiland_statistics,
)
from transfertune.methods.at2.method import epochs_to_peak, expected_max_gain, knowledge_gradient, max_trial_ucb
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


def test_optiland_distance_by_hand_min_max_then_zero_mean():
    # matched vectors [0, 1, 1, 1] and [0, 0, 0, 1]: already in [0, 1]; zero mean gives
    # [-.75, .25, .25, .25] and [-.25, -.25, -.25, .75], so D = (4 * 0.5^2) / 4 = 0.25
    grids = torch.tensor([[[0.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0, 1.0]]], dtype=D64)
    D, R = optiland_statistics(grids, torch.ones_like(grids, dtype=torch.bool))
    assert float(D[0, 1]) == pytest.approx(0.25) and float(R[0, 1]) == 1.0
    # the same landscapes shifted by a constant and scaled: the same distance
    D2, _ = optiland_statistics(torch.stack([grids[0] + 5.0, 0.1 * grids[1] - 2.0]), torch.ones_like(grids, dtype=torch.bool))
    assert float(D2[0, 1]) == pytest.approx(0.25)


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


def test_epochs_to_peak_counts_the_queries_to_the_best_reachable_epoch():
    mean = np.array([[0.1, 0.5, 0.9, 0.7]])
    std = np.array([[0.0, 0.0, 0.0, 2.0]])
    assert epochs_to_peak(mean, std, 0.0, 0, trained=0, remaining=10) == 3  # peak at epoch 3
    assert epochs_to_peak(mean, std, 0.25, 0, trained=0, remaining=10) == 4  # the bonus moves it to epoch 4
    assert epochs_to_peak(mean, std, 0.25, 0, trained=1, remaining=2) == 2  # epoch 4 is out of reach
    assert epochs_to_peak(mean, std, 0.0, 0, trained=3, remaining=1) == 1  # past the peak: one more epoch


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


def test_expected_max_gain_matches_monte_carlo():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400_000)
    for k in (1, 2, 5, 12):
        a, b = rng.normal(size=k), rng.normal(size=k)
        b[: k // 2] = b[0]  # equal slopes
        a[-1] = -np.inf if k > 2 else a[-1]  # a dropped line
        finite = np.isfinite(a)
        mc = np.max(a[finite][:, None] + b[finite][:, None] * z[None], axis=0).mean() - a[finite].max()
        assert expected_max_gain(a, b) == pytest.approx(mc, abs=4e-3)
    assert expected_max_gain(np.array([0.3, 0.1]), np.zeros(2)) == 0.0  # nothing moves
    # two lines crossing at z = 0 with slopes -1 and 1: E[|Z|] = sqrt(2 / pi)
    assert expected_max_gain(np.zeros(2), np.array([-1.0, 1.0])) == pytest.approx(np.sqrt(2 / np.pi))


def _two_config_gp(sd_new: float, E: int = 4):
    """Config 0 (the leader, trained 3 of 4 epochs, its last epoch forecast at 0.80 and known)
    and config 1 (fresh, forecast to rise to 0.78, prior s.d. ``sd_new`` at every epoch, its
    epochs perfectly correlated)."""
    mean = np.array([[0.5, 0.7, 0.75, 0.8], [0.3, 0.5, 0.7, 0.78]])

    def covariance(cells_a, cells_b):
        sd = lambda c: 1e-4 if c == 0 else sd_new  # noqa: E731
        return np.array([[sd(ca) * sd(cb) if ca == cb else 0.0 for cb, _ in cells_b] for ca, _ in cells_a])

    return mean, covariance


def test_knowledge_gradient_screens_when_screening_pays_and_commits_when_not():
    trained = np.array([3, 0])
    allowed = np.array([True, True])
    # an uncertain newcomer, budget to spare: its first epoch may show it beats the leader
    mean, cov = _two_config_gp(sd_new=0.1)
    gains = knowledge_gradient(mean, trained, remaining=10, allowed=allowed, covariance=cov, noise=1e-4)
    assert gains[1] > 0.005 and gains[1] > gains[0] + 0.005
    # a newcomer known to be worse: nothing to learn; one more epoch of the leader keeps its value
    mean, cov = _two_config_gp(sd_new=1e-4)
    gains = knowledge_gradient(mean, trained, remaining=10, allowed=allowed, covariance=cov, noise=1e-4)
    assert gains[1] < 1e-6 and abs(gains[0]) < 1e-6
    # the uncertain newcomer with one query left: its first epoch (0.3) is all it could deliver,
    # and the query would cost the leader its last epoch (0.80 -> 0.75): commit
    mean, cov = _two_config_gp(sd_new=0.1)
    gains = knowledge_gradient(mean, trained, remaining=1, allowed=allowed, covariance=cov, noise=1e-4)
    assert gains[0] == pytest.approx(0.0, abs=1e-6) and gains[1] < -0.04
