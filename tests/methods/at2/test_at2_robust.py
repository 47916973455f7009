"""AT2's online steps on degenerate data (issue 31, item 1): ties, flat tasks, constant curves,
duplicated tasks, 10-level non-monotone curves. Before the fix the online re-learning drove the
test noise to 1e-15 on such data, then xi until the task block was the identity, where the
eigendecomposition's backward pass divides by zero eigenvalue gaps: NaN parameters, then
``torch.linalg.eigh`` failing to converge in ``_task_eig``."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transfertune.core.spaces import SearchSpace
from transfertune.methods.at2.exact import EIG_GAP, SymmetricEig, _symmetric_eig_fallback
from transfertune.methods.at2.model import TEST_NOISE_FLOOR, ExactAT2, KernelChoice
from transfertune.methods.base import TransferProblem
from transfertune.methods.registry import make_method

D64 = torch.float64
SPACE = SearchSpace.from_dict({"name": "unit3", "hyperparameters": [
    {"name": f"x{i}", "type": "float", "lower": 0.0, "upper": 1.0} for i in range(3)]})
KINDS = ("curves", "flat", "constant", "duplicate", "tiny")


def degenerate_grids(rng: np.random.Generator, kinds: list[str], n: int, E: int, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """``(len(kinds), n, E)`` grids: ``curves`` (saturating, non-monotone by a per-config
    oscillation, 20% constant "diverged" configs), ``flat`` (SD 0.013 over configs, constant over
    epochs), ``constant`` (one value everywhere), ``duplicate`` (a copy of an earlier task),
    ``tiny`` (a landscape 1e-4 high); every value rounded to ``decimals`` (ties)."""
    X = rng.random((n, 3))
    base = X @ rng.normal(size=3)
    epochs = np.arange(1, E + 1)
    grids = []
    for kind in kinds:
        quality = base + rng.uniform(0, 2) * rng.normal(size=n)
        final = 0.3 + 0.6 * (quality - quality.min()) / (np.ptp(quality) + 1e-12)
        tau = 1 + 3 * rng.random(n)
        y = final[:, None] * (1 - np.exp(-epochs[None] / tau[:, None])) + 0.03 * np.sin(epochs[None] * rng.uniform(0.5, 3, (n, 1)))
        y[rng.random(n) < 0.2] = 0.1
        if kind == "flat":
            y = 0.5 + 0.013 * rng.normal(size=(n, 1)) + np.zeros((1, E))
        elif kind == "constant":
            y = np.full((n, E), 0.25)
        elif kind == "duplicate" and grids:
            y = grids[int(rng.integers(len(grids)))].copy()
        elif kind == "tiny":
            y = 0.5 + 1e-4 * y
        grids.append(np.round(y, decimals))
    return X, np.stack(grids)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), kinds=st.lists(st.sampled_from(KINDS), min_size=2, max_size=5),
       n=st.integers(3, 8), decimals=st.sampled_from([2, 6]), acquisition=st.sampled_from(["ucb", "weight_sample"]))
def test_online_steps_on_degenerate_databases_never_fail(seed, kinds, n, decimals, acquisition):
    """The last task is the test task; every cell of it is queried (Q = n * 10)."""
    rng = np.random.default_rng(seed)
    E = 10
    X, grids = degenerate_grids(rng, kinds, n, E, decimals)
    T = len(kinds) - 1
    problem = TransferProblem(config_ids=np.arange(n), configs=[{} for _ in range(n)], X=X, space=SPACE, n_epochs=E,
                              train_tasks=tuple(f"t{t}" for t in range(T)), train_grids=grids[:T], test_task="test",
                              trial_length=np.full(n, E), budget=n * E, seed=seed % 1000)
    method = make_method("at2", {"device": "cpu", "fit_steps": 30, "acquisition": acquisition})
    torch.manual_seed(0)
    method.setup(problem)
    for _ in range(problem.budget):
        c = method.ask()
        e = method.trained_epochs(c) + 1
        method.tell(c, e, float(grids[T][c, e - 1]))
        assert np.isfinite(method.mean).all() and np.isfinite(method.std).all()
    model = method.model
    assert all(torch.isfinite(p).all() for p in model._online_params)
    assert float(model.test_noise.detach()) >= float(model.test_noise_floor) > 0


def test_eig_backward_matches_torch_on_distinct_eigenvalues():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 5, generator=g, dtype=D64)
    A = (X @ X.T).requires_grad_(True)
    weights = torch.randn(5, generator=g, dtype=D64)
    probe = torch.randn(5, 5, generator=g, dtype=D64)

    def f(eig):
        values, vectors = eig(A)
        # a basis-independent function (A's matrix function applied to probe) and the eigenvalues
        return ((vectors * torch.log1p(values.clamp_min(0))) @ vectors.T * probe).sum() + weights @ values

    ours = torch.autograd.grad(f(SymmetricEig.apply), A)[0]
    theirs = torch.autograd.grad(f(torch.linalg.eigh), A)[0]
    torch.testing.assert_close(ours, (theirs + theirs.T) / 2, rtol=1e-8, atol=1e-10)


def test_eig_backward_is_finite_at_repeated_eigenvalues_where_torchs_is_not():
    A = torch.eye(4, dtype=D64, requires_grad=True)  # the task block once every exp(-D / xi^2) underflows
    probe = torch.arange(16, dtype=D64).reshape(4, 4)

    def f(eig):
        values, vectors = eig(A)
        return ((vectors * values) @ vectors.T * probe).sum()  # <A, probe>, through the factors

    assert not torch.isfinite(torch.autograd.grad(f(torch.linalg.eigh), A)[0]).all()
    ours = torch.autograd.grad(f(SymmetricEig.apply), A)[0]
    assert torch.isfinite(ours).all()
    # the eigenvalues' part is kept (the diagonal, exact); the rotation within the 4-fold
    # eigenspace is dropped (off-diagonal 0, where the exact gradient has probe's symmetric part):
    # harmless here since A's entries and their derivatives underflow together (next test)
    torch.testing.assert_close(torch.diagonal(ours), torch.diagonal(probe))
    assert float(ours.fill_diagonal_(0).abs().max()) == 0.0
    assert EIG_GAP < 1e-6


def test_eig_fallback_refuses_a_non_finite_matrix_in_one_line():
    A = torch.eye(3, dtype=D64)
    A[0, 1] = float("nan")
    with pytest.raises(ValueError, match="task covariance is not finite"):
        _symmetric_eig_fallback(A)


def test_eig_fallback_when_lapack_fails(monkeypatch):
    """LAPACK's eigh failing on a finite matrix: the jittered retry, then the SVD."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(4, 4, generator=g, dtype=D64)
    A = X @ X.T + 0.1 * torch.eye(4, dtype=D64)
    reference = torch.linalg.eigvalsh(A)
    eigh = torch.linalg.eigh
    calls = []

    def failing(M):
        calls.append(1)
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", failing)
    values, vectors = _symmetric_eig_fallback(A)
    assert len(calls) == 2  # the plain call and the jittered retry
    torch.testing.assert_close(values, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, A, rtol=1e-10, atol=1e-12)
    monkeypatch.setattr(torch.linalg, "eigh", eigh)


def _degenerate_model(**kwargs):
    rng = np.random.default_rng(8)
    X, grids = degenerate_grids(rng, ["curves", "curves", "flat", "curves", "constant"], 6, 10, 2)
    torch.manual_seed(0)
    return ExactAT2(KernelChoice(), SPACE, X, grids[:4], fit_steps=30, **kwargs), grids[4]


def test_online_gradients_are_finite_when_the_task_block_is_the_identity():
    model, test = _degenerate_model(online_steps=0)
    for c, e in [(0, 1), (0, 2), (1, 1), (2, 1)]:
        model.observe(c, e, float(test[c, e - 1]))
    with torch.no_grad():
        model.task_kernel.xi = 0.003  # every off-diagonal exp(-D / xi^2) underflows: A = I
    assert torch.equal(model.mixture().A.detach(), torch.eye(model.T, dtype=D64))
    loss = -model.joint_log_likelihood()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model._online_params)
    assert torch.isfinite(model.mixture().w).all()  # the weights' softmax: no 0/0


def test_the_test_noise_stays_above_its_floor_on_a_constant_test_curve():
    """A constant test task fits exactly: maximum likelihood alone took its noise to 1e-15."""
    model, _ = _degenerate_model(online_steps=3)
    assert float(model.test_noise_floor) == pytest.approx(TEST_NOISE_FLOOR * float(model.model.noise))
    assert float(model.test_noise) == pytest.approx(float(model.model.noise))  # it starts at the training noise
    for c in range(6):
        for e in range(1, 11):
            model.observe(c, e, 0.25)
    assert float(model.test_noise_floor) <= float(model.test_noise) < 0.5 * float(model.model.noise)
    assert math.isfinite(float(model.joint_log_likelihood()))
    assert model.skipped_steps == 0
