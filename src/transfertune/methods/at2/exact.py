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


class TargetTaskPosterior:
    """Exact posterior of the test task's (n, E) grid given complete training grids and m
    observed test cells, under ``s K_T ⊗ K_C ⊗ K_E + noise I``.

    The pieces that depend only on the training block (eigendecompositions, ``alpha``, the
    per-eigentask cross terms ``Phi``) are computed once; each new test observation adds one
    row to ``Phi`` (O(T (n^2 E + n E^2))), and a new test-task row ``a`` of K_T (OptiLand
    recomputed, or U re-fitted) costs only O(T m nE + m^3).

    Args:
        A: ``(T, T)`` training block of K_T.  KC: ``(n, n)``.  KE: ``(E, E)``.
        s, noise: output scale and noise variance.  Y: ``(T, n, E)`` training grids.
        train_means: ``(T,)`` constant means of the training tasks.
        mean_var: prior variance of the test task's unknown constant mean around the given
            ``test_mean``; marginalising it adds ``mean_var`` to every test-task covariance, so
            observations shift the whole test landscape (a harder task is lower everywhere).
        min_novelty: floor of the test task's residual variance given the training tasks, as a
            share of its own; ``"loo"`` takes the smallest such share among the training tasks
            (each given the others).
        convex: where the test task's weights on the training tasks (:meth:`prior_weights`)
            sum to more than 1, scale them to sum to 1 and set the test task's own variance to
            that combination's (plus the ``min_novelty`` share): the test task is then a weighted
            average of the training tasks rather than an amplified sum.
        weight_var: prior variance of a perturbation ``delta`` of those weights: the test task
            becomes the exact conditional plus ``delta^T dev(c, e)``, with ``dev_t`` training task
            t's posterior mean minus its constant mean and ``delta ~ N(0, weight_var I)``, which
            adds ``weight_var * dev(x)^T dev(x')`` to the test task's covariance. The test
            observations then re-weight the training tasks instead of only shifting the mean
            (0: off, the fixed combination of the joint GP).
        curve_var: prior variance of a learning-curve offset ``g(e)`` shared by every config of the
            test task, ``g ~ GP(0, curve_var * KE / mean(diag KE))``: the epoch-wise
            generalisation of ``mean_var``, so the curve shape one config shows on the test task
            (a slower start, a lower plateau) carries to the others (0: off).
    """

    def __init__(self, A, KC, KE, s, noise, Y, train_means, mean_var: float = 0.0, min_novelty: float | str = 1e-4,
                 convex: bool = False, weight_var: float = 0.0, curve_var: float = 0.0):
        self.convex = bool(convex)
        self.KC, self.KE, self.s, self.noise = KC, KE, float(s), float(noise)
        self.mean_var, self.weight_var, self.curve_var = float(mean_var), float(weight_var), float(curve_var)
        self.lA, self.QA = _eig(A)
        self.lA = self.lA.clamp_min(EIG_FLOOR)
        if min_novelty == "loo":
            # the least novel training task: its variance left unexplained by the other training
            # tasks, 1 / (A^-1)_tt, relative to A_tt
            A_inv_diag = ((self.QA**2) / self.lA).sum(dim=1)
            min_novelty = float((1.0 / (A_inv_diag * torch.diagonal(A))).min())
        self.min_novelty = float(min_novelty)
        lB, QB = _eig(KC)
        lC, QC = _eig(KE)
        self.L = self.s * self.lA[:, None, None] * lB[None, :, None] * lC[None, None, :] + self.noise
        alpha = _rotate(_rotate(Y - train_means[:, None, None], self.QA, QB, QC, True) / self.L, self.QA, QB, QC, False)
        # F_t = K_C alpha_t K_E: the mean of the test task is m* + s * sum_t a_t F_t
        self.F = torch.einsum("cd,tde,ef->tcf", KC, alpha, KE)
        # the training tasks' smoothed deviations from their means, s * sum_u A_tu F_u: the prior
        # mean is m* + sum_t w_t dev_t with w = A^-1 a, and weight_var makes w uncertain
        self.deviations = self.s * torch.einsum("tu,uce->tce", A, self.F) if self.weight_var else None
        # the curve offset's kernel in units of its mean variance
        self.KE_unit = KE / torch.diagonal(KE).mean() if self.curve_var else None
        # the offsets' variance at every cell: it does not depend on the test row, so once
        self.offset_var = self.mean_var + torch.zeros((KC.shape[0], KE.shape[0]), dtype=KC.dtype, device=KC.device)
        if self.weight_var:
            self.offset_var = self.offset_var + self.weight_var * (self.deviations**2).sum(0)
        if self.curve_var:
            self.offset_var = self.offset_var + self.curve_var * torch.diagonal(self.KE_unit)[None, :]
        self.GB = QB * lB  # G[c, j] = Q[c, j] lambda_j, so k(c, .) rotated = G[c, :]
        self.GC = QC * lC
        # Delta_i[c, e] = sum_jk GB[c,j]^2 GC[e,k]^2 / L_ijk  (diagonal of the correction)
        self.Delta = torch.einsum("cj,ijk,ek->ice", self.GB**2, 1.0 / self.L, self.GC**2)
        self.prior_diag = torch.outer(torch.diagonal(KC), torch.diagonal(KE))
        self.obs_c: list[int] = []
        self.obs_e: list[int] = []
        self.obs_y: list[float] = []
        self.Phi = torch.zeros((self.L.shape[0], 0, KC.shape[0], KE.shape[0]), dtype=KC.dtype, device=KC.device)

    @property
    def n_observed(self) -> int:
        return len(self.obs_y)

    def add_observation(self, c: int, e: int, y: float) -> None:
        """Condition on the test-task value ``y`` at config ``c``, epoch index ``e`` (0-based)."""
        # Phi_i[o, c', e'] = sum_jk GB[c,j] GB[c',j] GC[e,k] GC[e',k] / L_ijk
        M = torch.einsum("ijk,k,fk->ijf", 1.0 / self.L, self.GC[e], self.GC)
        row = torch.einsum("j,cj,ijf->icf", self.GB[c], self.GB, M)
        self.Phi = torch.cat([self.Phi, row[:, None]], dim=1)
        self.obs_c.append(int(c))
        self.obs_e.append(int(e))
        self.obs_y.append(float(y))

    # ---------------------------------------------------------------- test-task row of K_T
    def safe_row(self, a: torch.Tensor, a_self: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shrink the cross-covariance ``a`` so the full task matrix stays positive definite.

        OptiLand (Eq. 4) is not guaranteed PSD; where ``a^T A^-1 a`` reaches ``a_self`` the
        Schur complement would turn negative, so ``a`` is scaled to keep it at
        >= ``min_novelty * a_self`` (the share of the test task's variance that the training tasks
        cannot explain).
        """
        at = self.QA.T @ a
        quad = (at**2 / self.lA).sum()
        limit = a_self * (1 - self.min_novelty)
        scale = torch.where(quad > limit, torch.sqrt(limit / quad), torch.ones_like(quad))
        return a * scale, at * scale

    def prior_weights(self, a: torch.Tensor, a_self: torch.Tensor) -> tuple[torch.Tensor, float]:
        """How the test task's prior mean is made of the training tasks.

        The prior mean is ``m* + s * sum_t a_t F_t``, and the training tasks' own posterior means
        are ``m_t + s * sum_u A_tu F_u``, so the test task's deviation from its mean is the
        combination with weights ``w = A^-1 a`` (after :meth:`safe_row`) of theirs.

        Returns:
            ``w`` ``(T,)`` and the share of the test task's prior variance the training tasks
            leave unexplained, ``1 - a^T A^-1 a / a_self``.
        """
        a, at, a_self = self.effective_row(a, a_self)
        return self._weights(at), float(1.0 - (at**2 / self.lA).sum() / a_self)

    def _weights(self, at: torch.Tensor) -> torch.Tensor:
        """``A^-1 a`` from the rotated row ``at = QA^T a``."""
        return self.QA @ (at / self.lA)

    def effective_row(self, a: torch.Tensor, a_self: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The test task's row ``a``, rotated ``QA^T a`` and own variance as the posterior uses
        them: :meth:`safe_row`, then (``convex``) weights scaled to sum to at most 1."""
        a, at = self.safe_row(a, a_self)
        if self.convex:
            total = self._weights(at).sum()
            if float(total.detach()) > 1.0:
                a, at = a / total, at / total
                a_self = (at**2 / self.lA).sum() / (1 - self.min_novelty)
        return a, at, a_self

    def _pieces(self, a, a_self, test_mean):
        a, at, a_self = self.effective_row(a, a_self)
        w = at**2  # weights of the per-eigentask corrections
        mu1 = test_mean + self.s * torch.einsum("t,tce->ce", a, self.F)
        return a, w, mu1, a_self

    def _obs_cov(self, w, a_self):
        """Sigma1 between the observed cells and every cell: ``(m, n, E)``."""
        c, e = self.obs_c, self.obs_e
        prior = self.s * a_self * self.KC[c][:, :, None] * self.KE[e][:, None, :] + self._offset_cov(c, e)
        return prior - self.s**2 * torch.einsum("i,imce->mce", w, self.Phi)

    def _offset_cov(self, c: list[int], e: list[int]) -> torch.Tensor:
        """The test-row-independent offsets (constant mean, weight perturbation, curve offset)
        between the observed cells and every cell: ``(m, n, E)`` (or a broadcastable scalar)."""
        cov = torch.as_tensor(self.mean_var, dtype=self.KC.dtype, device=self.KC.device)
        if self.weight_var:
            cov = cov + self.weight_var * torch.einsum("tm,tce->mce", self.deviations[:, c, e], self.deviations)
        if self.curve_var:
            cov = cov + self.curve_var * self.KE_unit[e][:, None, :]
        return cov

    def log_likelihood(self, a, a_self, test_mean) -> torch.Tensor:
        """``log p(y_test_observed | training grids)``: the evidence used to fit the test row."""
        if not self.obs_y:
            return torch.zeros((), dtype=self.KC.dtype, device=self.KC.device)
        a, w, mu1, a_self = self._pieces(a, a_self, test_mean)
        c, e = self.obs_c, self.obs_e
        cross = self._obs_cov(w, a_self)[:, c, e]
        K = cross + self.noise * torch.eye(len(c), dtype=cross.dtype, device=cross.device)
        r = torch.tensor(self.obs_y, dtype=mu1.dtype, device=mu1.device) - mu1[c, e]
        chol = _robust_cholesky(K)
        z = torch.cholesky_solve(r[:, None], chol)[:, 0]
        return -0.5 * (r * z).sum() - torch.log(torch.diagonal(chol)).sum() - 0.5 * len(c) * math.log(2 * math.pi)

    def predict(self, a, a_self, test_mean) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the latent f on every test cell, each ``(n, E)``."""
        a, w, mu1, a_self = self._pieces(a, a_self, test_mean)
        var1 = self.s * a_self * self.prior_diag + self.offset_var - self.s**2 * torch.einsum("i,ice->ce", w, self.Delta)
        if not self.obs_y:
            return mu1, var1.clamp_min(1e-12)
        c, e = self.obs_c, self.obs_e
        cross = self._obs_cov(w, a_self)  # (m, n, E)
        m = cross.shape[0]
        K = cross[:, c, e] + self.noise * torch.eye(m, dtype=cross.dtype, device=cross.device)
        chol = _robust_cholesky(K)
        r = torch.tensor(self.obs_y, dtype=mu1.dtype, device=mu1.device) - mu1[c, e]
        flat = cross.reshape(m, -1)
        z = torch.cholesky_solve(r[:, None], chol)[:, 0]
        mean = mu1 + (z @ flat).reshape(mu1.shape)
        v = torch.linalg.solve_triangular(chol, flat, upper=False)
        var = var1 - (v**2).sum(0).reshape(mu1.shape)
        return mean, var.clamp_min(1e-12)


def _robust_cholesky(K: torch.Tensor) -> torch.Tensor:
    jitter = 0.0
    eye = torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
    for _ in range(8):
        chol, info = torch.linalg.cholesky_ex(K + jitter * eye)
        if int(info) == 0:
            return chol
        jitter = max(jitter * 10, 1e-8 * float(torch.diagonal(K).mean()))
    raise torch.linalg.LinAlgError("covariance of the test observations is not positive definite")
