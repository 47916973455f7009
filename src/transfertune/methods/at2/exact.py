"""Exact GP inference for the AT2 model with Kronecker algebra.

The offline data are complete grids (training tasks x configs x epochs) and the kernel is the
product of Eq. 3, so the training covariance is ``s * K_T ⊗ K_C ⊗ K_E + noise * I``. Its
eigendecomposition is the Kronecker product of three small ones, which gives

- the exact log marginal likelihood of all N = T*n*E training values in O(n^3 + E^3 + N(T+n+E))
  (:class:`KroneckerMLL`, with hand-written gradients with respect to the three factor
  matrices so that autograd never differentiates through an eigendecomposition, whose
  gradient is unstable for the repeated eigenvalues of low-rank deep kernels);
- the exact posterior on the test task: first conditioned on the training grids in closed form
  (the test task's prior becomes a GP with mean ``mu1`` and covariance ``Sigma1``), then on the
  m test-task observations with an m x m solve (:class:`TargetTaskPosterior`). The test task's
  missing cells are simply not conditioned on (no imputation, no inducing points).

Shapes: T training tasks, n configs, E epochs; grids are ``(T, n, E)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

EIG_FLOOR = 1e-10


def _eig(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric eigendecomposition with eigenvalues clipped at 0 (PSD projection)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return values.clamp_min(0.0), vectors


def _rotate(Y: torch.Tensor, QA: torch.Tensor, QB: torch.Tensor, QC: torch.Tensor, transpose: bool) -> torch.Tensor:
    """Multiply the (T, n, E) tensor by (QA ⊗ QB ⊗ QC)^T (``transpose``) or by QA ⊗ QB ⊗ QC.

    One axis at a time: O(N (T + n + E)). (A single four-operand einsum may contract in an
    order that materialises a T*n*E x T*n*E intermediate.)
    """
    if transpose:
        Y = torch.einsum("ti,tce->ice", QA, Y)
        Y = torch.einsum("cj,ice->ije", QB, Y)
        return torch.einsum("ek,ije->ijk", QC, Y)
    Y = torch.einsum("ti,ijk->tjk", QA, Y)
    Y = torch.einsum("cj,tjk->tck", QB, Y)
    return torch.einsum("ek,tck->tce", QC, Y)


class KroneckerMLL(torch.autograd.Function):
    """Exact log marginal likelihood of a complete grid under ``s A⊗B⊗C + noise I``.

    Inputs: A ``(T,T)``, B ``(n,n)``, C ``(E,E)``, s and noise (scalars), Yc ``(T,n,E)`` (values
    minus the mean). Returns the sum of the log likelihood (a scalar).
    """

    @staticmethod
    def forward(ctx, A, B, C, s, noise, Yc):
        lA, QA = _eig(A)
        lB, QB = _eig(B)
        lC, QC = _eig(C)
        lam = lA[:, None, None] * lB[None, :, None] * lC[None, None, :]
        L = s * lam + noise
        Yt = _rotate(Yc, QA, QB, QC, transpose=True)
        alpha_t = Yt / L
        alpha = _rotate(alpha_t, QA, QB, QC, transpose=False)
        mll = -0.5 * (Yt * alpha_t).sum() - 0.5 * torch.log(L).sum() - 0.5 * Yc.numel() * math.log(2 * math.pi)
        ctx.save_for_backward(A, B, C, s, lA, QA, lB, QB, lC, QC, L, alpha, alpha_t, lam)
        return mll

    @staticmethod
    def backward(ctx, g):
        A, B, C, s, lA, QA, lB, QB, lC, QC, L, alpha, alpha_t, lam = ctx.saved_tensors
        # d mll / dK = 0.5 (alpha alpha^T - K^-1) for K = s A⊗B⊗C + noise I, contracted per factor.
        inv_L = 1.0 / L
        # quadratic parts: alpha^T (dA ⊗ B ⊗ C) alpha etc.
        BaC = torch.einsum("cd,tde,ef->tcf", B, alpha, C)
        AaC = torch.einsum("tu,ude,ef->tdf", A, alpha, C)
        AaB = torch.einsum("tu,udf->tdf", A, torch.einsum("cd,udf->ucf", B, alpha))
        gA = 0.5 * s * torch.einsum("tce,uce->tu", alpha, BaC)
        gB = 0.5 * s * torch.einsum("tce,tde->cd", alpha, AaC)
        gC = 0.5 * s * torch.einsum("tce,tcf->ef", alpha, AaB)
        # log-determinant parts: tr(K^-1 (dA ⊗ B ⊗ C)) = sum_i (QA^T dA QA)_ii * w_i
        wA = (lB[None, :, None] * lC[None, None, :] * inv_L).sum(dim=(1, 2))
        wB = (lA[:, None, None] * lC[None, None, :] * inv_L).sum(dim=(0, 2))
        wC = (lA[:, None, None] * lB[None, :, None] * inv_L).sum(dim=(0, 1))
        gA = gA - 0.5 * s * (QA * wA) @ QA.T
        gB = gB - 0.5 * s * (QB * wB) @ QB.T
        gC = gC - 0.5 * s * (QC * wC) @ QC.T
        gs = 0.5 * (alpha_t**2 * lam).sum() - 0.5 * (lam * inv_L).sum()
        gnoise = 0.5 * (alpha**2).sum() - 0.5 * inv_L.sum()
        gY = -alpha
        return g * gA, g * gB, g * gC, g * gs, g * gnoise, g * gY


@dataclass
class TaskMixture:
    """The joint task covariance of T training tasks and the test task, in the form that makes
    it positive definite by construction.

    The test task is a weighted combination of the training tasks plus a task of its own,
    ``f* = sum_t w_t f_t + g``, ``g`` independent of every ``f_t`` with task variance ``nu``, so

        K_T = [[A,       A w        ],
               [w^T A,   w^T A w + nu]]

    is positive definite for every ``w`` whenever ``A`` is and ``nu > 0`` (its Schur complement
    is ``nu``). ``nu / (w^T A w + nu)`` is the share of the test task's variance the training
    tasks leave unexplained.

    Attributes:
        A: ``(T, T)`` training block.  w: ``(T,)`` the test task's weights.  nu: ``()`` its own variance.
    """

    A: torch.Tensor
    w: torch.Tensor
    nu: torch.Tensor

    @property
    def unexplained(self) -> torch.Tensor:
        """``nu / (w^T A w + nu)``."""
        explained = self.w @ self.A @ self.w
        return self.nu / (explained + self.nu)

    def full(self) -> torch.Tensor:
        """The ``(T+1, T+1)`` task covariance, the test task last."""
        Aw = self.A @ self.w
        top = torch.cat([self.A, Aw[:, None]], dim=1)
        bottom = torch.cat([Aw, (self.w @ Aw + self.nu)[None]])[None]
        return torch.cat([top, bottom], dim=0)

    @classmethod
    def from_matrix(cls, K: torch.Tensor) -> "TaskMixture":
        """The same joint covariance from a ``(T+1, T+1)`` PSD task matrix (test task last):
        ``w = A^-1 a`` and ``nu = a_self - a^T A^-1 a`` (clamped at 0 against round-off)."""
        A, a = K[:-1, :-1], K[-1, :-1]
        w = torch.linalg.solve(A, a)
        return cls(A, w, (K[-1, -1] - a @ w).clamp_min(0.0))


class SpectralBasis:
    """The configuration and fidelity factors in their eigenbasis, and the training grids in it.

    With ``K_C = QB diag(lB) QB^T`` ``(n, n)`` and ``K_E = QC diag(lC) QC^T`` ``(E, E)``, the
    training covariance ``s A ⊗ K_C ⊗ K_E + noise I`` is diagonalised by ``QA ⊗ QB ⊗ QC`` for
    ``A = QA diag(lA) QA^T``: eigenvalues ``L_ijk = s lA_i lam_jk + noise``, ``lam_jk = lB_j lC_k``.
    The configuration and fidelity parts are fixed online, so the grids are rotated by ``QB`` and
    ``QC`` once; what depends on the task covariance is elementwise over ``(T, n, E)`` after a
    ``T x T`` eigendecomposition.

    Args:
        KC: ``(n, n)``.  KE: ``(E, E)``.  Y: ``(T, n, E)`` training grids.  means: ``(T,)``.
    Attributes:
        Yhat: ``(T, n, E)``: ``QB^T (Y_t - m_t) QC`` per task.
    """

    def __init__(self, KC: torch.Tensor, KE: torch.Tensor, Y: torch.Tensor, means: torch.Tensor):
        self.lB, self.QB = _eig(KC)
        self.lC, self.QC = _eig(KE)
        self.lam = self.lB[:, None] * self.lC[None, :]
        self.Yhat = torch.einsum("cj,tce,ek->tjk", self.QB, Y - means[:, None, None], self.QC)
        self.n_values = Y.numel()

    def to_grid(self, spectrum: torch.Tensor) -> torch.Tensor:
        """``QB S QC^T`` for ``S`` ``(..., n, E)`` in the basis: back to (config, epoch) cells."""
        return torch.einsum("cj,...jk,ek->...ce", self.QB, spectrum, self.QC)

    def rows(self, c, e) -> torch.Tensor:
        """``(m, n E)``: row o is ``QB[c_o] ⊗ QC[e_o]``, so a cell's value is ``rows @ S.flatten()``."""
        return (self.QB[c][:, :, None] * self.QC[e][:, None, :]).reshape(len(c), -1)


# Eigenvalue pairs closer than this (relative to the largest) are treated as repeated in the
# backward pass of the task block's eigendecomposition.
EIG_GAP = 1e-9


def _symmetric_eig_fallback(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``eigh`` of a finite symmetric matrix, with the fallbacks for LAPACK's rare failure to
    converge: again after a jitter of ``1e-12 * (|tr A| / T + 1)`` on the diagonal (shifts every
    eigenvalue alike, the eigenvectors stay), then by the SVD (another LAPACK driver; for a
    symmetric PSD matrix ``U S U^T`` is its eigendecomposition)."""
    if not torch.isfinite(A).all():
        raise ValueError(f"the AT2 task covariance is not finite: {A.detach().cpu().numpy().tolist()}")
    try:
        return torch.linalg.eigh(A)
    except torch.linalg.LinAlgError:
        pass
    jitter = 1e-12 * (float(torch.diagonal(A).abs().mean()) + 1.0)
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    try:
        values, vectors = torch.linalg.eigh(A + jitter * eye)
        return values - jitter, vectors
    except torch.linalg.LinAlgError:
        U, S, _ = torch.linalg.svd(A)
        order = S.argsort()
        return S[order], U[:, order]


class SymmetricEig(torch.autograd.Function):
    """``eigh`` of a small symmetric matrix with a backward pass that stays finite at repeated
    eigenvalues, and a fallback factorisation (``_symmetric_eig_fallback``).

    For ``A = Q diag(l) Q^T``, the gradient is ``Q (diag(g_l) + F ∘ (Q^T g_Q)) Q^T`` (symmetrised)
    with ``F_ij = 1 / (l_j - l_i)``. Torch's own backward divides by ``l_j - l_i`` for every pair
    and returns NaN when two eigenvalues coincide, which happens online: a task block ``A`` that
    reaches the identity (``xi`` small: every off-diagonal ``exp(-D / xi^2)`` underflows) or two
    training tasks with the same normalised landscape. Here ``F_ij = 0`` for pairs closer than
    ``EIG_GAP`` times the largest eigenvalue: the eigenvectors of such a pair are not determined
    (any rotation of them is as good), and the functions of ``A`` differentiated here (the
    likelihoods and posteriors) do not depend on that choice; what is dropped is the divided
    difference of a spectral function over a gap below 1e-9, the rotation's part of the gradient.
    Checked against torch's backward on distinct eigenvalues (``test_at2_posterior.py``).
    """

    @staticmethod
    def forward(ctx, A):
        values, vectors = _symmetric_eig_fallback(A)
        ctx.save_for_backward(values, vectors)
        return values, vectors

    @staticmethod
    def backward(ctx, g_values, g_vectors):
        values, vectors = ctx.saved_tensors
        inner = torch.diag_embed(g_values) if g_values is not None else torch.zeros_like(vectors)
        if g_vectors is not None:
            gaps = values[None, :] - values[:, None]  # l_j - l_i
            scale = values.abs().max().clamp_min(1e-300)
            separated = gaps.abs() > EIG_GAP * scale
            F = torch.where(separated, 1.0 / torch.where(separated, gaps, torch.ones_like(gaps)), torch.zeros_like(gaps))
            inner = inner + F * (vectors.T @ g_vectors)
        grad = vectors @ inner @ vectors.T
        return (grad + grad.T) / 2


def _task_eig(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of the small ``(T, T)`` task block, differentiable also at repeated
    eigenvalues (:class:`SymmetricEig`); eigenvalues floored at ``EIG_FLOOR``."""
    values, vectors = SymmetricEig.apply((A + A.T) / 2)
    return values.clamp_min(EIG_FLOOR), vectors


class TargetTaskPosterior:
    """Exact posterior of the test task's ``(n, E)`` grid given complete training grids and m
    observed test cells.

    The test task is the :class:`TaskMixture` of the training tasks plus its own part and the
    :class:`Offsets` shared by its configs,

        f*(c, e) = m* + sum_t w_t f_t(c, e) + g(c, e) + offsets,
        g ~ GP(0, nu s R_C ⊗ K_E),   R_C = diag(K_C)^-1/2 K_C diag(K_C)^-1/2,

    so given the training grids it is a GP with

        mu1 = m* + sum_t w_t dev_t,   dev_t = E[f_t | Y] - m_t,
        Sigma1 = (QB ⊗ QC) diag(d) (QB ⊗ QC)^T + nu s R_C ⊗ K_E + offsets,
        d_jk = s lam_jk noise sum_i lA_i wt_i^2 / L_ijk,   wt = QA^T w

    (``d``: the training tasks' own posterior uncertainty seen through the weights). The test
    task's own part uses the configuration kernel's correlations, so its prior variance is the
    same for every config: how far the deep kernel happens to scale one config's features says
    nothing about how novel the test task is there. The m test observations, with their own noise,
    are then conditioned on with an ``m x m`` solve. Every quantity is a differentiable function of
    ``(A, w, nu, offsets, test_noise)``: the online re-learning takes gradients of
    :meth:`train_log_likelihood` + :meth:`log_likelihood` through them.

    Args:
        basis: the fixed configuration and fidelity factors and training grids.
        s, noise: output scale and the training observations' noise variance.
        KC, KE: ``(n, n)`` and ``(E, E)``: the fitted configuration and fidelity kernels.
    """

    def __init__(self, basis: SpectralBasis, s, noise, KC: torch.Tensor, KE: torch.Tensor):
        self.basis = basis
        self.s = torch.as_tensor(s, dtype=basis.lam.dtype, device=basis.lam.device)
        self.noise = torch.as_tensor(noise, dtype=basis.lam.dtype, device=basis.lam.device)
        scale = torch.diagonal(KC).clamp_min(1e-12).rsqrt()
        self.RC = scale[:, None] * KC * scale[None, :]
        self.KE = KE
        epochs = torch.arange(KE.shape[0], dtype=KE.dtype, device=KE.device)
        self.epoch_gaps = (epochs[:, None] - epochs[None, :]).abs()
        self.obs_c: list[int] = []
        self.obs_e: list[int] = []
        self.obs_y: list[float] = []
        self._rows = basis.lam.new_zeros((0, basis.lam.numel()))

    @property
    def n_observed(self) -> int:
        return len(self.obs_y)

    def add_observation(self, c: int, e: int, y: float) -> None:
        """Condition on the test-task value ``y`` at config ``c``, epoch index ``e`` (0-based)."""
        self.obs_c.append(int(c))
        self.obs_e.append(int(e))
        self.obs_y.append(float(y))
        self._rows = torch.cat([self._rows, self.basis.rows([int(c)], [int(e)])])

    def _rotated(self, A: torch.Tensor):
        lA, QA = _task_eig(A)
        L = self.s * lA[:, None, None] * self.basis.lam[None] + self.noise  # (T, n, E)
        Ytil = torch.einsum("ti,tjk->ijk", QA, self.basis.Yhat)
        return lA, QA, L, Ytil

    def train_log_likelihood(self, A: torch.Tensor) -> torch.Tensor:
        """``log p(Y)`` of the training grids (the same value as :class:`KroneckerMLL`)."""
        _, _, L, Ytil = self._rotated(A)
        return -0.5 * (Ytil**2 / L).sum() - 0.5 * torch.log(L).sum() - 0.5 * self.basis.n_values * math.log(2 * math.pi)

    def spectra(self, mix: TaskMixture, with_deviations: bool = False) -> dict[str, torch.Tensor]:
        """The mixture part of the test task's prior given the training grids, in the basis.

        Returns ``h`` ``(n, E)`` (``mu1 - m*`` rotated), ``d`` ``(n, E)`` (its covariance's
        spectrum) and, with ``with_deviations``, ``dev`` ``(T, n, E)``: each training task's
        deviation in cells.
        """
        lA, QA, L, Ytil = self._rotated(mix.A)
        slam = self.s * self.basis.lam
        wt = QA.T @ mix.w
        # E[f_t | Y] - m_t rotated: s lam A M^-1 Yhat = QA (s lam lA / L * Ytil)
        dev_rot = slam[None] * lA[:, None, None] * Ytil / L  # (T, n, E) in the task eigenbasis
        out = {"h": torch.einsum("i,ijk->jk", wt, dev_rot)}
        out["d"] = slam * self.noise * torch.einsum("i,ijk->jk", lA * wt**2, 1.0 / L)
        if with_deviations:
            out["dev"] = self.basis.to_grid(torch.einsum("ti,ijk->tjk", QA, dev_rot))
        return out

    def _direct_cov(self, sp: dict, mix: TaskMixture, off: "Offsets", to_every_cell: bool) -> torch.Tensor:
        """The test task's own part and the offsets between the observed cells and (the observed
        or every) cell: ``(m, m)`` or ``(m, n, E)``."""
        c, e = self.obs_c, self.obs_e
        if to_every_cell:
            cov = (mix.nu * self.s) * self.RC[c][:, :, None] * self.KE[e][:, None, :] + off.mean_var
            if off.curve_var is not None:
                cov = cov + off.curve_kernel(self.epoch_gaps)[e][:, None, :]
        else:
            cov = (mix.nu * self.s) * self.RC[c][:, c] * self.KE[e][:, e] + off.mean_var
            if off.curve_var is not None:
                cov = cov + off.curve_kernel(self.epoch_gaps)[e][:, e]
        if off.weight_var is not None:
            left = sp["dev"][:, c, e]  # (T, m)
            right = sp["dev"] if to_every_cell else left
            cov = cov + off.weight_var * torch.einsum("tm,t...->m...", left, right)
        return cov

    def _observed_cov(self, sp: dict, mix: TaskMixture, off: "Offsets", test_noise) -> torch.Tensor:
        G = self._rows
        K = (G * sp["d"].reshape(-1)) @ G.T + self._direct_cov(sp, mix, off, False)
        return K + test_noise * torch.eye(len(G), dtype=K.dtype, device=K.device)

    def _residual(self, sp: dict, test_mean) -> torch.Tensor:
        mean_obs = test_mean + self._rows @ sp["h"].reshape(-1)
        return torch.tensor(self.obs_y, dtype=mean_obs.dtype, device=mean_obs.device) - mean_obs

    def log_likelihood(self, mix: TaskMixture, off: "Offsets", test_mean, test_noise) -> torch.Tensor:
        """``log p(y_test observed | training grids)``."""
        if not self.obs_y:
            return torch.zeros((), dtype=self.basis.lam.dtype, device=self.basis.lam.device)
        sp = self.spectra(mix, off.weight_var is not None)
        chol = torch.linalg.cholesky(self._observed_cov(sp, mix, off, test_noise))
        r = self._residual(sp, test_mean)
        z = torch.cholesky_solve(r[:, None], chol)[:, 0]
        return -0.5 * (r * z).sum() - torch.log(torch.diagonal(chol)).sum() - 0.5 * len(r) * math.log(2 * math.pi)

    def weights(self, mix: TaskMixture, off: "Offsets", test_mean, test_noise) -> torch.Tensor:
        """The test task's weights on the training tasks given its observations, ``(T,)``: the
        mixture's ``w`` plus the posterior mean of the perturbation ``delta`` (``weight_var``),
        ``weight_var * dev_obs^T K^-1 r`` with ``dev_obs`` ``(m, T)`` the training tasks'
        deviations at the observed cells, ``K`` the observations' covariance, ``r`` the residual."""
        if off.weight_var is None or not self.obs_y:
            return mix.w
        sp = self.spectra(mix, True)
        chol = torch.linalg.cholesky(self._observed_cov(sp, mix, off, test_noise))
        z = torch.cholesky_solve(self._residual(sp, test_mean)[:, None], chol)[:, 0]
        return mix.w + off.weight_var * sp["dev"][:, self.obs_c, self.obs_e] @ z

    def weight_directions(self, mix: TaskMixture, off: "Offsets", test_noise) -> torch.Tensor:
        """``(T, n, E)``: ``G`` with ``E[f | y, delta] = E[f | y] + G^T z`` for the weight
        perturbation's posterior draw ``delta = E[delta | y] + L z``, ``z ~ N(0, I)``,
        ``L L^T = Cov(delta | y)``: ``G^T = Cov(f, delta | y) L^-T`` with
        ``Cov(f, delta | y) = weight_var (dev - cross^T K^-1 dev_obs)`` and
        ``Cov(delta | y) = weight_var I - weight_var^2 dev_obs^T K^-1 dev_obs``. A draw of the test
        task's landscape over which training tasks it resembles, the rest at its posterior mean."""
        if off.weight_var is None:
            raise ValueError("weight directions need the weight perturbation (weight_var)")
        sp = self.spectra(mix, True)
        dev, wv = sp["dev"], off.weight_var
        T = dev.shape[0]
        if not self.obs_y:
            return torch.sqrt(wv) * dev
        m = self.n_observed
        cross = self.basis.to_grid((self._rows * sp["d"].reshape(-1)).reshape(m, *dev.shape[1:])) + self._direct_cov(sp, mix, off, True)
        chol = torch.linalg.cholesky(self._observed_cov(sp, mix, off, test_noise))
        dev_obs = dev[:, self.obs_c, self.obs_e].T  # (m, T)
        Kinv_dev = torch.cholesky_solve(dev_obs, chol)  # (m, T)
        cov_f_delta = wv * (dev.reshape(T, -1) - Kinv_dev.T @ cross.reshape(m, -1))  # (T, nE)
        cov_delta = wv * torch.eye(T, dtype=dev.dtype, device=dev.device) - wv**2 * dev_obs.T @ Kinv_dev
        L = torch.linalg.cholesky((cov_delta + cov_delta.T) / 2)
        return torch.linalg.solve_triangular(L, cov_f_delta, upper=False).reshape(dev.shape)

    def _prior_cross(self, sp: dict, mix: TaskMixture, off: "Offsets", cells_a, cells_b) -> torch.Tensor:
        """Covariance of f at cells ``a`` and ``b`` (lists of ``(c, e)``, e 0-based) given the
        training grids, before the test observations: ``(|a|, |b|)``."""
        ca, ea = [int(c) for c, _ in cells_a], [int(e) for _, e in cells_a]
        cb, eb = [int(c) for c, _ in cells_b], [int(e) for _, e in cells_b]
        K = (self.basis.rows(ca, ea) * sp["d"].reshape(-1)) @ self.basis.rows(cb, eb).T
        K = K + (mix.nu * self.s) * self.RC[ca][:, cb] * self.KE[ea][:, eb] + off.mean_var
        if off.curve_var is not None:
            K = K + off.curve_kernel(self.epoch_gaps)[ea][:, eb]
        if off.weight_var is not None:
            K = K + off.weight_var * sp["dev"][:, ca, ea].T @ sp["dev"][:, cb, eb]
        return K

    def covariance(self, mix: TaskMixture, off: "Offsets", test_noise, cells_a, cells_b) -> torch.Tensor:
        """Posterior covariance of the latent f between cells ``a`` and ``b`` given the training
        grids and the test observations, ``(|a|, |b|)``: ``S_ab - S_ao (S_oo + noise I)^-1 S_ob``
        (its diagonal on ``a = b`` is :meth:`predict`'s variance)."""
        sp = self.spectra(mix, off.weight_var is not None)
        K = self._prior_cross(sp, mix, off, cells_a, cells_b)
        if not self.obs_y:
            return K
        observed = list(zip(self.obs_c, self.obs_e))
        chol = torch.linalg.cholesky(self._observed_cov(sp, mix, off, test_noise))
        left = torch.linalg.solve_triangular(chol, self._prior_cross(sp, mix, off, observed, cells_a), upper=False)
        right = torch.linalg.solve_triangular(chol, self._prior_cross(sp, mix, off, observed, cells_b), upper=False)
        return K - left.T @ right

    def predict(self, mix: TaskMixture, off: "Offsets", test_mean, test_noise) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the latent f on every test cell, each ``(n, E)``."""
        sp = self.spectra(mix, off.weight_var is not None)
        mean = test_mean + self.basis.to_grid(sp["h"])
        var = self.basis.QB**2 @ sp["d"] @ (self.basis.QC**2).T + (mix.nu * self.s) * torch.diagonal(self.KE)[None, :] + off.mean_var
        if off.curve_var is not None:
            var = var + off.curve_var
        if off.weight_var is not None:
            var = var + off.weight_var * (sp["dev"] ** 2).sum(0)
        if not self.obs_y:
            return mean, var.clamp_min(1e-12)
        m = self.n_observed
        cross = self.basis.to_grid((self._rows * sp["d"].reshape(-1)).reshape(m, *mean.shape)) + self._direct_cov(sp, mix, off, True)
        chol = torch.linalg.cholesky(self._observed_cov(sp, mix, off, test_noise))
        r = self._residual(sp, test_mean)
        flat = cross.reshape(m, -1)
        z = torch.cholesky_solve(r[:, None], chol)[:, 0]
        mean = mean + (z @ flat).reshape(mean.shape)
        v = torch.linalg.solve_triangular(chol, flat, upper=False)
        return mean, (var - (v**2).sum(0).reshape(mean.shape)).clamp_min(1e-12)


@dataclass
class Offsets:
    """Variances of the parts of the test task that are shared across its configs (``None``:
    the part is off).

    Attributes:
        mean_var: a constant offset ``delta ~ N(0, mean_var)`` (the test task's unknown mean).
        curve_var, curve_lengthscale: a learning-curve offset shared by every config,
            ``g(e) ~ GP(0, curve_var Matern52(|e - e'| / curve_lengthscale))`` (epochs): a task that
            learns more slowly, jumps later at a learning-rate step or plateaus lower at every config.
        weight_var: a perturbation of the weights, ``delta ~ N(0, weight_var I)`` on the training
            tasks' deviations (re-weighting, and the amplitude of the whole combination).
    """

    mean_var: torch.Tensor | float = 0.0
    curve_var: torch.Tensor | None = None
    curve_lengthscale: torch.Tensor | float = 10.0
    weight_var: torch.Tensor | None = None

    def curve_kernel(self, gaps: torch.Tensor) -> torch.Tensor:
        """``curve_var * (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r)``, ``r = gaps / curve_lengthscale``."""
        r = math.sqrt(5.0) * gaps / self.curve_lengthscale
        return self.curve_var * (1.0 + r + r**2 / 3.0) * torch.exp(-r)
