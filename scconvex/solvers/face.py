"""Newton directions of the native backend computed on a face of the PSD cone.

The native backend optimises over the factor ``W`` of ``Q = W W^T`` (shape ``(g, r)``).
A Newton system in ``W`` costs three ``g x g x r`` matrix products per Hessian product,
and the factorisation makes it badly conditioned: directions move ``Q`` by ``V W^T + W
V^T``, which scales with the singular values of ``W`` (from 1 to ``sqrt(max m_p)`` and
beyond on long tails). This module solves the same Newton system in ``Q`` itself, where a
Hessian product of the cost is a few passes over ``g x g`` arrays, and lifts the answer
back to ``W``.

Near the optimum ``Q`` has rank ``r`` (``g - 1`` by default) and stays on the face ``F =
{Q PSD : N^T Q N = 0}`` of the cone, ``N`` an orthonormal basis of the null space of
``W^T``. Its tangent space, with the fixed unit diagonal of one-class blocks, is

    T = {E symmetric : N^T E N = 0, E_pp = 0 on sphere rows},

and along the curve ``W + t V``, with ``V`` the lift of ``E in T`` of
:meth:`FaceNewton.lift` (``V W^T + W V^T = E``), ``d^2 F / dt^2 = <E, D^2 F [E]> + 2 <S, V
V^T>``, where ``S = C - Diag(nu)`` is the Lagrangian gradient of the certificate. The
second term is the curvature of the face. Near the optimum ``S`` is concentrated on ``N``
(``S W`` is the Riemannian gradient, which vanishes), so ``<S, V V^T> ~ tr(Sigma N^T E Q^+
E N)`` with ``Sigma = N^T S N``: a term that costs ``O(g^2 (g - r))`` per product.
Preconditioned conjugate gradients on ``T`` use the diagonal of ``D^2 F`` that the cost
provides (``hess_diagonal``): the Hessian of a sum of log-sum-exp terms is close to
diagonal in the cosines.

Measured (one BLAS thread, tau = 0.1): on the iNaturalist-sized long tail (999 blocks) a
Newton step costs 21 to 46 products of about 10 ms, against 50 capped products of 80 ms in
``W``; the run is certified in about 6 s instead of 22 s (``docs/benchmarks.md``).

References
----------
B. Vandereycken, "Low-rank matrix completion by Riemannian optimization", SIAM J. Optim. 23
(2013) (the geometry of fixed-rank matrices).
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer (2006), section 7.1
(truncated Newton).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, cholesky, get_blas_funcs
from scipy.linalg.lapack import dpocon
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from .optim import truncated_cg

logger = logging.getLogger(__name__)

MAX_NULL = 4
"""Largest null-space dimension ``g - r`` handled on the face (otherwise: no direction)."""

MIN_RCOND = 1e-8
"""Smallest (estimated) reciprocal condition number of ``W^T W`` for the lift to be
trusted."""


class FaceNewton:
    """Newton directions in ``Q`` for a cost with a Hessian (``hess``, ``hess_diagonal``).

    Parameters
    ----------
    cost : object
        Provides ``sphere`` (bool per block: unit diagonal), ``hess(state, E)`` (the second
        derivative of the cost in ``Q`` along a symmetric ``E``, computed in ``dtype``)
        and ``hess_diagonal(C)`` (a positive approximation of its diagonal at a point with
        gradient ``C``).
    dtype : numpy float type
        Precision of the conjugate gradients and of the lift. A Newton direction needs no
        more than float32; the line search and the certificate stay in float64.
    """

    def __init__(self, cost, dtype: type = np.float64) -> None:
        self.cost = cost
        self.dtype = dtype
        self.sphere = np.asarray(cost.sphere, dtype=bool)
        self.sphere_idx = np.flatnonzero(self.sphere)
        self.usable = True
        self.rejected = 0
        self.woodbury = True

    def direction(self, W: np.ndarray, Q: np.ndarray, C: np.ndarray, state, eta: float,
                  max_cg: int, deadline: float = math.inf) -> np.ndarray | None:
        """A descent direction for ``W`` from a truncated Newton solve on the face.

        Parameters
        ----------
        W, Q, C : ndarray
            The factor, ``Q = W W^T`` and the cost's gradient ``C`` in ``Q``.
        state : object
            What the cost's ``hess`` needs at ``Q``.
        eta : float
            Relative residual at which conjugate gradients stop.
        max_cg : int
            Cap on Hessian products.
        deadline : float
            ``time.perf_counter()`` value after which conjugate gradients stop.

        Returns
        -------
        ndarray or None
            A tangent direction of shape ``W.shape``; None when the face is not usable here
            (``W`` numerically rank deficient, more than :data:`MAX_NULL` null directions,
            or a step that would empty an eigenvalue of ``Q``; after two of those, or after
            :attr:`usable` was set False by the caller, for the rest of the run): the
            caller then solves in ``W``.
        """
        if not self.usable:
            return None
        system = self._system(W, Q, C)
        if system is None:
            return None
        E = self.solve(system, C, state, eta, max_cg, deadline)
        V, EK = self._lift(system["K"], system["N"], E)
        # For x = W y, x^T (Q + E) x = y^T (A^2 + W^T E W) y with A = W^T W: Q + E stays
        # PSD on range(W) while the eigenvalues of R = A^-1 W^T E W A^-1 = K^T E K stay
        # above -1. A step that (nearly) empties an eigenvalue says that the optimum lies
        # on a smaller face (a lower rank), where this model does not hold: the factor
        # then takes the step (measured: group level at tau = 5 otherwise ends next to a
        # degenerate W).
        if _lowest_eigenvalue(system["K"], EK) < -0.5:
            # Far from the optimum one such step can happen; a second one says that the
            # optimum has a lower rank, which no later step changes: no more face steps.
            self.rejected += 1
            self.usable = self.rejected < 2
            return None
        return V.astype(float)

    def solve(self, system: dict, C: np.ndarray, state, eta: float, max_cg: int,
              deadline: float = math.inf) -> np.ndarray:
        """The Newton step ``E`` in ``Q`` on the face (in :attr:`dtype`) of a system made
        by :meth:`face_system` (see :meth:`direction` for the arguments)."""
        dt = self.dtype
        if dt != np.float64:
            state = tuple(np.asarray(x, dtype=dt) for x in state)
            # Single precision resolves a residual to about 1e-6 of its start, no further.
            eta = max(eta, 1e-5)
        return self._solve(system, C, state, eta, max_cg, deadline)

    # ------------------------------------------------------------------ set-up
    def _system(self, W: np.ndarray, Q: np.ndarray, C: np.ndarray) -> dict | None:
        g, r = W.shape
        k0 = g - r
        if k0 > MAX_NULL or k0 < 0:
            return None
        A = W.T @ W
        try:
            chol = cho_factor(A, check_finite=False)
        except LinAlgError:
            return None
        # LAPACK's estimate of 1 / (||A||_1 ||A^-1||_1) from the factor, in O(r^2). When the
        # optimum has a lower rank than W, W^T W becomes singular on the way there: the
        # face model no longer holds (the native monitor also drops it when steps stall).
        norm1 = float(np.max(np.sum(np.abs(A), axis=0)))
        rcond, info = dpocon(chol[0], norm1, uplo="L" if chol[1] else "U")
        if info != 0 or not rcond > MIN_RCOND:
            return None
        # K = W A^-1: then Q^+ = K K^T, and the lift is three products with it.
        K = cho_solve(chol, W.T, check_finite=False).T
        N = np.zeros((g, 0))
        if k0:
            # A fixed seed: the basis only has to span the null space of W^T.
            Z = np.random.default_rng(0).standard_normal((g, k0))
            for _ in range(2):
                Z -= K @ (W.T @ Z)
            N = np.linalg.qr(Z)[0]
        dt = self.dtype
        Kd = K.astype(dt)
        system = self.face_system(N, Q, C, lambda x: Kd @ (Kd.T @ x))
        system["K"] = Kd
        return system

    def face_system(self, N: np.ndarray, Q: np.ndarray, C: np.ndarray, pinv) -> dict:
        """The Newton system on the face ``{N^T Q N = 0}`` at ``Q`` with gradient ``C``.

        ``N`` (float64, orthonormal columns) spans the null space of ``Q`` and ``pinv``
        applies the pseudo-inverse ``Q^+`` to a ``(g, j)`` array in :attr:`dtype`. With
        one null vector the conjugate gradients are preconditioned by the cost's Jacobi
        diagonal plus the exact face curvature (:func:`_woodbury_factor`), else by the
        diagonal alone.
        """
        nu = np.einsum("ij,ij->i", C, Q) * self.sphere
        Sigma = N.T @ (C @ N - nu[:, None] * N)
        Sigma = 0.5 * (Sigma + Sigma.T)
        dt = self.dtype
        diag = self.cost.hess_diagonal(C)
        system = {"N": N.astype(dt), "NSigma": (N @ Sigma).astype(dt), "pinv": pinv,
                  "proj": _FaceProjection(N.astype(dt), self.sphere_idx),
                  "proj64": _FaceProjection(N, self.sphere_idx),
                  "diag": diag.astype(dt), "woodbury": None}
        if N.shape[1] == 1 and Sigma[0, 0] > 0 and self.woodbury:
            system["woodbury"] = _woodbury_factor(N[:, 0], float(Sigma[0, 0]), Q, diag, dt)
        return system

    # ------------------------------------------------------------------ the solve
    def _solve(self, system: dict, C: np.ndarray, state, eta: float, max_cg: int,
               deadline: float) -> np.ndarray:
        """Preconditioned truncated CG for ``H E = -proj(C)`` on ``T`` (Frobenius metric)."""
        proj = system["proj"]
        inv_d = 1.0 / system["diag"]
        # Near the optimum proj(C) is many orders below C (C - Diag(nu) tends to a
        # multiple of N N^T): project in float64, then round.
        b = system["proj64"](-C).astype(self.dtype)
        info: dict = {}
        wood = system["woodbury"]
        if wood is None:
            def precondition(r):
                return proj(r * inv_d)
        else:
            L, n = wood

            def precondition(r):
                # (D + U C U^T)^-1 r with U(w) = w n^T + n w^T (_woodbury_factor).
                w = cho_solve((L, True), 2.0 * ((r * inv_d) @ n), check_finite=False)
                z = r.copy()
                z = _add_outer(z, -1.0, w, n)
                z = _add_outer(z, -1.0, n, w)
                z *= inv_d
                return proj(z)
        E = truncated_cg(self.hessian(system, state), b, precondition,
                         eta * float(np.linalg.norm(b)), max_cg, deadline, info)
        logger.debug("face Newton: %d products, relative residual %.1e (%.1e asked)%s%s",
                     info.get("products", 0),
                     info.get("residual", math.nan) / float(np.linalg.norm(b)), eta,
                     "; Woodbury preconditioner" if wood is not None else "",
                     "; negative curvature" if info.get("negative_curvature") else "")
        return E

    def hessian(self, system: dict, state):
        """The model Hessian on ``T``: ``E -> proj(D^2 F [E] + Q^+ E N Sigma N^T + its
        transpose)``, self-adjoint in the Frobenius inner product."""
        proj, pinv = system["proj"], system["pinv"]
        N, NSigma = system["N"], system["NSigma"]
        hess = self.cost.hessian_operator(state)

        def apply(E: np.ndarray) -> np.ndarray:
            out = hess(E)
            if N.shape[1]:
                # Curvature of the face: Y N^T + N Y^T with Y = Q^+ E N Sigma.
                Y = pinv(E @ NSigma)
                for y, n in zip(Y.T, N.T, strict=True):
                    out = _add_outer(out, 1.0, y, n)
                    out = _add_outer(out, 1.0, n, y)
            return proj(out)

        return apply

    @staticmethod
    def lift(K: np.ndarray, N: np.ndarray, E: np.ndarray) -> np.ndarray:
        """A ``V`` with ``V W^T + W V^T = E`` for ``E`` in ``T`` (``W`` of full column rank).

        With ``K = W (W^T W)^-1``, ``W K^T = P = I - N N^T`` is the projector onto the range
        of ``W``, and ``V = E K - (1/2) P E K = (E K + N N^T E K) / 2`` gives ``V W^T + W
        V^T = E - (I - P) E (I - P) = E - N (N^T E N) N^T``, which is ``E`` on ``T``. One
        ``g x g x r`` product (``E K``).
        """
        return FaceNewton._lift(K, N, E)[0]

    @staticmethod
    def _lift(K: np.ndarray, N: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        EK = E @ K
        V = EK * 0.5
        if N.shape[1]:
            V += 0.5 * (N @ (N.T @ EK))
        return V, EK


def _lowest_eigenvalue(K: np.ndarray, EK: np.ndarray) -> float:
    """The smallest eigenvalue of the symmetric part of ``R = K^T (E K)`` (Lanczos on
    products with ``K`` and ``E K`` when it is large: ``R`` itself would cost a ``g x r x
    r`` product)."""
    r = K.shape[1]
    if r <= 64:
        R = K.T @ EK
        return float(np.linalg.eigvalsh(0.5 * (R + R.T))[0])

    def matvec(x):
        x = np.asarray(x, dtype=K.dtype).ravel()
        return 0.5 * (K.T @ (EK @ x) + EK.T @ (K @ x))

    op = LinearOperator((r, r), matvec=matvec, dtype=K.dtype)
    try:
        return float(eigsh(op, k=1, which="SA", tol=1e-3, return_eigenvectors=False)[0])
    except ArpackNoConvergence:
        R = K.T @ EK
        return float(np.linalg.eigvalsh(0.5 * (R + R.T))[0])


def _woodbury_factor(n: np.ndarray, sigma: float, Q: np.ndarray, diag: np.ndarray,
                     dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factor of the ``g x g`` capacitance matrix of the face preconditioner.

    With one null vector ``n`` the face curvature is ``E -> sigma (Q^+ y n^T + n y^T
    Q^+)``, ``y = E n``: ``U C U^T`` with ``U(w) = w n^T + n w^T``, ``U^T(E) = 2 E n`` and
    ``C = (sigma / 2) Q^+``, or, on ``T`` (where ``n^T E n = 0``), ``C = (sigma / 2) (Q + n
    n^T)^-1``, which is invertible. Woodbury's identity then inverts ``D + U C U^T``
    (``D`` the cost's Jacobi diagonal) through ``Z = C^-1 + U^T D^-1 U = (2 / sigma) (Q +
    n n^T) + 2 (Diag(D^-1 n^2) + Diag(n) D^-1 Diag(n))``: ``(D + U C U^T)^-1 r = D^-1 (r -
    U(Z^-1 U^T D^-1 r))``.
    """
    # Built and factored in ``dtype``: it only preconditions (measured: 1-2 conjugate
    # gradient steps per Newton step with it, 50-140 without, on the 21841-class tail).
    nd = n.astype(dtype)
    Z = np.reciprocal(diag, dtype=dtype)
    dn = Z @ (nd * nd)
    Z *= nd[:, None]
    Z *= nd[None, :]
    Z[np.diag_indices_from(Z)] += dn
    Z *= sigma
    np.add(Z, Q, out=Z, casting="same_kind")
    Z = _add_outer(Z, 1.0, nd, nd)
    Z *= 2.0 / sigma
    L = cholesky(Z, lower=True, overwrite_a=True, check_finite=False)
    return L, nd


def face_diagonal(N: np.ndarray, Sigma: np.ndarray, pinv_diag: np.ndarray) -> np.ndarray:
    """The diagonal of the face curvature ``E -> Q^+ E N Sigma N^T + its transpose``.

    On the unit matrices ``e_p e_p^T`` and ``(e_p e_q^T + e_q e_p^T) / sqrt 2`` it is
    ``2 rho_p Q^+_pp`` and ``rho_q Q^+_pp + rho_p Q^+_qq + 2 (N Sigma N^T)_pq Q^+_pq``,
    with ``rho = diag(N Sigma N^T)``; without the last (cross) term, and with ``rho``
    clipped at zero, it is the positive part that a Jacobi preconditioner needs. It
    matters: on the diagonal of a block of many classes it dominates the cost's own
    curvature (by 1e5 at the simplex start of the 8142-class long tail, where ``n_p^2``
    is large and ``D^2 F`` is scaled by ``1 / (m_p - 1)^2``).
    """
    rho = np.maximum(np.einsum("ij,jk,ik->i", N, Sigma, N), 0.0)
    qd = np.maximum(pinv_diag, 0.0)
    out = np.multiply.outer(qd, rho)
    out += out.T
    return out


def _add_outer(E: np.ndarray, alpha: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``E + alpha x y^T`` in place (BLAS ``ger`` on the Fortran view of a C array)."""
    ger = get_blas_funcs("ger", (E,))
    # On E^T, ger adds alpha y x^T, which is alpha x y^T on E.
    out = ger(alpha, y, x, a=E.T, overwrite_a=True)
    return out.T


class _FaceProjection:
    """Orthogonal (Frobenius) projection of symmetric matrices onto ``T``.

    The normal space is spanned by ``sym(n_i n_j^T)`` (``n_i n_j^T + n_j n_i^T`` off the
    diagonal) and ``e_p e_p^T`` on sphere rows; the coefficients solve a small Gram system
    through its Schur complement (the sphere part of that Gram matrix is the identity). For
    orthonormal ``N`` the Gram matrix of the ``sym(n_i n_j^T)`` is diagonal: 1 for ``i =
    j``, 2 otherwise.
    """

    def __init__(self, N: np.ndarray, sphere_idx: np.ndarray) -> None:
        self.N = N
        self.sphere_idx = sphere_idx
        k0 = N.shape[1]
        self.pairs = [(i, j) for i in range(k0) for j in range(i, k0)]
        self.weight = np.array([1.0 if i == j else 2.0 for i, j in self.pairs])
        if self.pairs:
            Ns = N[sphere_idx].astype(float)
            self.cross = np.array([w * Ns[:, i] * Ns[:, j]
                                   for (i, j), w in zip(self.pairs, self.weight, strict=True)])
            self.schur = np.diag(self.weight) - self.cross @ self.cross.T

    def __call__(self, E: np.ndarray) -> np.ndarray:
        s = self.sphere_idx
        if not self.pairs:
            E[s, s] = 0.0
            return E
        N = self.N
        EN = E @ N
        rn = np.array([w * float(N[:, i] @ EN[:, j])
                       for (i, j), w in zip(self.pairs, self.weight, strict=True)])
        rs = E[s, s].astype(float)
        cn = np.linalg.solve(self.schur, rn - self.cross @ rs)
        cs = rs - self.cross.T @ cn
        for (i, j), c in zip(self.pairs, cn, strict=True):
            E = _add_outer(E, -c, N[:, i], N[:, j])
            if i != j:
                E = _add_outer(E, -c, N[:, j], N[:, i])
        E[s, s] -= cs.astype(E.dtype)
        return E
