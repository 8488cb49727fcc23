"""The native backend in the block Gram itself: PSD matrices of rank ``g - 1``.

The factor ``W`` of :mod:`scconvex.solvers.native` (``Q = W W^T``, shape ``(g, g - 1)``)
makes every evaluation cost two ``g x g x r`` matrix products (``W W^T`` and ``C W``),
and a Newton step in it a third (the lift of :mod:`scconvex.solvers.face`). Above a few
hundred blocks those products are most of the run (measured at g = 2987: 1.4 s of every
1.9 s evaluation). This module optimises over ``Q`` directly, on the manifold

    M = {Q symmetric PSD of rank g - 1, Q_pp = 1 on sphere rows},

where the optimum of distinct counts lies (rank ``k - 1``: the class means sum to a null
combination). A point is kept with its null vector ``n`` and the Cholesky factor ``L L^T
= Q + n n^T``, which proves that ``Q`` is PSD with exactly that null space (``Q + n n^T``
is positive definite) and applies ``Q^+ = (Q + n n^T)^-1 - n n^T`` in ``O(g^2)``. One
Cholesky factorisation (``g^3 / 3`` flops, a sixth of one product ``C W``) per point is
the only cubic cost; everything else is a few passes over ``g x g`` arrays.

* **Tangent space** at ``Q``: ``T = {E symmetric : n^T E n = 0, E_pp = 0 on sphere
  rows}``, with the Frobenius metric; the Riemannian gradient is the orthogonal
  projection of the Euclidean one (:class:`scconvex.solvers.face._FaceProjection`).
* **Retraction** ``R_Q(V)``: the null vector moves to ``n' = (n - Q^+ V n) / |...|`` (to
  first order ``Q + V`` then has ``n'`` in its null space), ``Q + V`` is projected onto
  ``n'^perp`` (``P (Q + V) P``, ``P = I - n' n'^T``), and sphere rows and columns are
  rescaled to unit diagonal (``D (.) D``). This is ``Q + V + O(|V|^2)`` for tangent ``V``
  (:meth:`CorankOne.retract_scaled`); the result has the null vector ``D^-1 n'`` and is
  accepted only when the Cholesky factorisation of ``R + n n^T`` succeeds (else the line
  search shortens the step).
* **Newton steps** are those of :mod:`scconvex.solvers.face` without the lift: the face
  model Hessian is the Riemannian Hessian of ``M``, with ``Q^+`` applied through ``L``.

Where the optimum has a lower rank, the Cholesky factorisation fails ever closer to the
current point and the run stalls; the caller then continues in the factor.

References
----------
B. Vandereycken, P.-A. Absil and S. Vandewalle, "A Riemannian geometry with complete
geodesics for the set of positive semidefinite matrices of fixed rank", IMA J. Numer.
Anal. 33 (2013).
P.-A. Absil, R. Mahony and R. Sepulchre, *Optimization Algorithms on Matrix Manifolds*,
Princeton (2008), section 4.1 (retractions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular
from scipy.linalg.lapack import get_lapack_funcs, strtri

from .face import FaceNewton, _add_outer, _FaceProjection, face_diagonal
from .optim import Point

KNOWN = 3
"""Points whose null vector and factor are remembered (the current point and line-search
trials)."""


@dataclass(eq=False)
class _Info:
    """What is known about a point of the manifold."""

    null: np.ndarray                    # unit null vector n (float64)
    chol: np.ndarray | None             # lower L, L L^T = Q + n n^T (None: not PSD)
    proj: _FaceProjection | None = None
    low: dict = field(default_factory=dict)   # L in other precisions, diag(Q^+)

    def factor_in(self, dtype: type) -> np.ndarray:
        """``L`` in ``dtype`` (converted once)."""
        if self.chol.dtype == dtype:
            return self.chol
        if dtype not in self.low:
            self.low[dtype] = self.chol.astype(dtype)
        return self.low[dtype]

    def pinv_diag(self) -> np.ndarray:
        """The diagonal of ``Q^+``: column norms of ``L^-1``, less ``n^2`` (float32 is
        enough: it only scales a preconditioner)."""
        if "diag" not in self.low:
            inv, _ = strtri(self.factor_in(np.float32), lower=1)
            self.low["diag"] = np.einsum("ij,ij->j", inv, inv).astype(float) - self.null**2
        return self.low["diag"]

    def pinv(self, x: np.ndarray, dtype: type | None = None) -> np.ndarray:
        """``Q^+ x`` for a vector or ``(g, j)`` array ``x`` (in the precision of the
        factor, or ``dtype``)."""
        L = self.chol if dtype is None else self.factor_in(dtype)
        dt = L.dtype
        n = self.null.astype(dt)
        y = cho_solve((L, True), x.astype(dt, copy=False), check_finite=False)
        out = y - np.multiply.outer(n, n @ y) if x.ndim > 1 else y - n * float(n @ y)
        return out.astype(x.dtype, copy=False)


@dataclass(eq=False)
class _Step:
    """What :meth:`CorankOne.slope` needs about one retraction ``R_X(V)``."""

    X: np.ndarray
    V: np.ndarray
    Y: np.ndarray
    info: _Info
    unorm: float
    nv: np.ndarray
    a: np.ndarray
    alpha: float
    dvec: np.ndarray


class CorankOne:
    """The manifold of PSD ``g x g`` matrices of rank ``g - 1`` with unit diagonal on
    ``sphere`` rows (the :mod:`scconvex.manifold` interface, plus :meth:`slope`).

    Parameters
    ----------
    sphere : ndarray of bool, shape (g,)
        Rows whose diagonal entry is fixed at 1.
    dtype : numpy float type
        Precision of the Cholesky factors (the PSD test and ``Q^+``): float32 halves
        their cost; the points themselves stay in float64.
    """

    def __init__(self, sphere: np.ndarray, dtype: type = np.float64) -> None:
        self.dtype = dtype
        self.sphere = np.asarray(sphere, dtype=bool)
        self.sphere_idx = np.flatnonzero(self.sphere)
        self._known: list[tuple[np.ndarray, _Info]] = []

    # ------------------------------------------------------------------ points
    def attach(self, Q: np.ndarray, null: np.ndarray) -> _Info:
        """Remember ``Q`` with its unit null vector; factor ``Q + n n^T`` (the PSD test).

        ``Q n = 0`` is assumed (the retraction makes its points so, up to rounding): then
        ``Q + n n^T`` is positive definite exactly when ``Q`` is PSD of rank ``g - 1``.
        """
        M = _add_outer(Q.astype(self.dtype), 1.0, null.astype(self.dtype),
                       null.astype(self.dtype))
        try:
            L = cholesky(M, lower=True, overwrite_a=True, check_finite=False)
        except LinAlgError:
            L = None
        info = _Info(null, L)
        self._known.insert(0, (Q, info))
        del self._known[KNOWN:]
        return info

    def info(self, Q: np.ndarray) -> _Info:
        """The remembered :class:`_Info` of ``Q`` (found by identity; the most recently
        used points are kept)."""
        for i, (X, info) in enumerate(self._known):
            if X is Q:
                if i:
                    self._known.insert(0, self._known.pop(i))
                return info
        raise KeyError("point unknown to the manifold (make it with attach or retract)")

    def conditioning(self, Q: np.ndarray) -> float:
        """An estimate of ``1 / cond(Q + n n^T)`` (LAPACK's ``pocon``, ``O(g^2)``): it tends
        to 0 when the iterates approach a point of lower rank."""
        info = self.info(Q)
        L = info.chol
        if L is None:
            return 0.0
        if "rcond" not in info.low:
            M = Q.astype(L.dtype)
            norm1 = float(np.max(np.sum(np.abs(M), axis=0))) + 1.0
            pocon = get_lapack_funcs("pocon", (L,))
            rcond, err = pocon(L, norm1, uplo="L")
            info.low["rcond"] = float(rcond) if err == 0 else 0.0
        return info.low["rcond"]

    def feasible(self, Q: np.ndarray) -> bool:
        """Whether ``Q`` passed the PSD test when it was made."""
        return self.info(Q).chol is not None

    def factor(self, Q: np.ndarray) -> np.ndarray:
        """A factor ``W`` (shape ``(g, g - 1)``) with ``W W^T = Q``, in ``O(g^2)``.

        ``Q = L (I - y y^T) L^T`` with ``y = L^-1 n`` (a unit vector, because ``(Q + n
        n^T) n = n``); a Householder reflection ``H`` with ``H e_0 = y`` gives ``I - y y^T
        = H_1 H_1^T``, ``H_1`` its other columns, so ``W = L H_1``.
        """
        info = self.info(Q)
        L = cholesky(_add_outer(Q.copy(), 1.0, info.null, info.null), lower=True,
                     check_finite=False)
        y = solve_triangular(L, info.null, lower=True, check_finite=False)
        y /= np.linalg.norm(y)
        v = y.copy()
        v[0] -= 1.0
        vv = float(v @ v)
        W = L.copy()
        if vv > 0:
            _add_outer(W, -2.0 / vv, L @ v, v)
        return W[:, 1:]

    # ------------------------------------------------------------------ geometry
    def proj(self, X: np.ndarray, V: np.ndarray, *, inplace: bool = False) -> np.ndarray:
        """Orthogonal projection of a symmetric ``V`` onto the tangent space at ``X``."""
        info = self.info(X)
        if info.proj is None:
            info.proj = _FaceProjection(info.null[:, None], self.sphere_idx)
        return info.proj(V if inplace else V.copy())

    def retract_scaled(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, _Step]:
        """``R_X(V)`` (module docstring) and what :meth:`slope` needs.

        The result is remembered; :meth:`feasible` says whether it passed the PSD test.
        """
        info = self.info(X)
        n = info.null
        u = n - info.pinv(V @ n)
        unorm = float(np.linalg.norm(u))
        nv = u / unorm
        Y = X + V
        a = Y @ nv
        alpha = float(nv @ a)
        # P (X + V) P = Y - b nv^T - nv b^T with b = a - (alpha / 2) nv.
        b = a - 0.5 * alpha * nv
        Y = _add_outer(Y, -1.0, b, nv)
        Y = _add_outer(Y, -1.0, nv, b)
        dvec = np.ones(len(n))
        diag = np.diag(Y)[self.sphere]
        ok = bool(np.all(diag > 0))
        if ok:
            dvec[self.sphere] = 1.0 / np.sqrt(diag)
            Y *= dvec[:, None]
            Y *= dvec[None, :]
            Y[self.sphere_idx, self.sphere_idx] = 1.0
        m = nv / dvec
        m /= np.linalg.norm(m)
        if ok:
            self.attach(Y, m)
        else:
            self._known.insert(0, (Y, _Info(m, None)))
            del self._known[KNOWN:]
        return Y, _Step(X, V, Y, info, unorm, nv, a, alpha, dvec)

    def retract(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        """The retraction alone."""
        return self.retract_scaled(X, V)[0]

    def slope(self, grad: np.ndarray, d: np.ndarray, step: _Step) -> float:
        """``<grad, D R_X(V)[d]>``: the slope of the cost along the retraction at ``V``
        in the direction ``d``, for ``grad`` the Riemannian gradient at ``R_X(V)``.

        With ``A = X + V``, ``n' = u / |u|``, ``u = n - Q^+ V n``, ``R~ = P A P`` and ``R = D
        R~ D``: ``dn' = -(y - n' (n'.y)) / |u|`` with ``y = Q^+ d n``, ``dR~ = P d P - (P A
        dn') n'^T - (P a) dn'^T - transposes`` (``a = A n'``), ``dD_pp / D_pp = -D_pp^2
        dR~_pp / 2`` on sphere rows, and ``<G, dR> = <D G D, dR~> + 2 sum_p (dD_pp / D_pp)
        (G R)_pp``. A few passes over ``g x g`` arrays.
        """
        s = step
        nv, dvec = s.nv, s.dvec
        yd = s.info.pinv(d @ s.info.null)
        ndot = -(yd - nv * float(nv @ yd)) / s.unorm
        And = s.X @ ndot + s.V @ ndot
        PAnd = And - nv * float(nv @ And)
        Pa = s.a - s.alpha * nv
        dn = d @ nv
        ndn = float(nv @ dn)

        def gd(x):   # (D grad D) x
            return dvec * (grad @ (dvec * x))

        Gn = gd(nv)
        inner = float(np.einsum("ij,ij->i", grad, d * dvec[None, :]) @ dvec)
        t1 = inner - 2.0 * float(Gn @ dn) + float(nv @ Gn) * ndn
        t2 = -2.0 * float(Gn @ PAnd) - 2.0 * float(ndot @ gd(Pa))
        diag = np.diag(d) - 2.0 * dn * nv + ndn * nv * nv - 2.0 * PAnd * nv - 2.0 * Pa * ndot
        delta = np.where(self.sphere, -0.5 * dvec * dvec * diag, 0.0)
        t3 = 2.0 * float(delta @ np.einsum("ij,ij->i", grad, s.Y))
        return t1 + t2 + t3

    def inner(self, X: np.ndarray, U: np.ndarray, V: np.ndarray) -> float:
        """Riemannian inner product (Frobenius) of tangent vectors."""
        return float(np.vdot(U, V))


def etf(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simplex ETF of ``sum(sizes)`` classes as a block Gram, and its null vector.

    All class means at cosine ``-1/(k-1)`` give ``Q = (k I - u u^T) / (k - 1)`` with ``u =
    sqrt(m)``: rank ``g - 1``, null vector ``u / |u|``, unit diagonal on blocks of one
    class.
    """
    m = np.asarray(sizes, dtype=float)
    k = float(np.sum(m))
    u = np.sqrt(m / k)
    Q = np.multiply.outer(u, -u)
    Q[np.diag_indices_from(Q)] += 1.0
    Q *= k / (k - 1.0)
    return Q, u


class GramProblem:
    """Cost, manifold and Newton directions of the native problem in ``Q`` (the
    :class:`scconvex.optim.Problem` interface, plus :meth:`newton_direction`).

    Parameters
    ----------
    cost : object
        The native cost (``evaluate``, ``hess``, ``hess_diagonal``, ``sphere``, ``astype``).
    k : int
        Number of classes (the trace bound of the certificate).
    dtype : numpy float type
        Precision of the Newton systems.
    """

    def __init__(self, cost, k: int, dtype: type = np.float64) -> None:
        self.cost = cost
        self.k = k
        self.manifold = CorankOne(cost.sphere, dtype)
        self.dtype = dtype
        low = cost.astype(dtype) if dtype != np.float64 else cost
        self._face = FaceNewton(low, dtype)
        self._face64 = FaceNewton(cost)
        self.face = None        # the factor route's face switch (not used here)
        self.face_steps = 0
        self.has_hessian = True
        # A failed line search along the Newton direction means that the next point of
        # rank g - 1 is out of reach (an eigenvalue of Q on its way to 0): the factor
        # takes over rather than a slower direction here.
        self.fallback_directions = False

    def start(self, sizes: np.ndarray) -> Point:
        """The simplex ETF (:func:`etf`), evaluated."""
        Q, null = etf(sizes)
        self.manifold.attach(Q, null)
        return self.evaluate(Q)

    def evaluate(self, Q: np.ndarray) -> Point:
        """Cost and Riemannian gradient at ``Q``; ``F = inf`` where ``Q`` failed the PSD
        test (the line search then shortens the step)."""
        if not self.manifold.feasible(Q):
            return Point(Q, math.inf, np.zeros(0), None)
        F, C, state = self.cost.evaluate(Q)
        if self.dtype != np.float64:
            # Only the Newton systems read the softmax, in their precision: keep that copy.
            state = (state[0].astype(self.dtype),) + tuple(state[1:])
        grad = self.manifold.proj(Q, C, inplace=False)
        return Point(Q, F, grad, (Q, C, state))

    def precondition(self, p: Point) -> np.ndarray:
        """Entry-wise weights: the positive Jacobi diagonal of the face model Hessian (the
        cost's and the face curvature's, :func:`scconvex.solvers.face.face_diagonal`)."""
        Q, C = p.data[:2]
        info = self.manifold.info(p.X)
        n = info.null
        nu = np.einsum("ij,ij->i", C, Q) * self.manifold.sphere
        sigma = float(n @ (C @ n)) - float(nu @ (n * n))
        h = self.cost.hess_diagonal(C)
        h += face_diagonal(n[:, None], np.array([[sigma]]), info.pinv_diag())
        return h

    def _system(self, p: Point, face: FaceNewton) -> dict:
        info = self.manifold.info(p.X)
        dt = face.dtype
        return face.face_system(info.null[:, None], p.data[0], p.data[1],
                                lambda x: info.pinv(x, dt))

    def newton_direction(self, p: Point, eta: float, max_cg: int,
                         deadline: float) -> np.ndarray:
        """Truncated Newton on the tangent space (face model Hessian, :attr:`dtype`)."""
        Q, C, state = p.data
        # A Hessian product costs a few passes over g x g arrays: four times the cap.
        E = self._face.solve(self._system(p, self._face), C, state, eta, 4 * max_cg,
                             deadline)
        self.face_steps += 1
        return E.astype(float)

    def hessian(self, p: Point, dtype: type = np.float64):
        """The Riemannian Hessian on the tangent space at ``p`` (float64)."""
        return self._face64.hessian(self._system(p, self._face64), p.data[2])


def coarsen(cost, blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the blocks of a native cost with similar counts into about ``blocks`` groups.

    Blocks with two or more samples per class are binned by ``log`` count (equal widths);
    blocks of one sample per class stay apart. A merged group gets the classes of its
    blocks and their class-weighted geometric mean count (not an integer in general: the
    coarse model only provides a start).

    Returns
    -------
    labels : ndarray of int, shape (g,)
        Coarse group of each block.
    sizes, counts : ndarray of float
        Classes per coarse group and their (mean) count.
    """
    m = np.asarray(cost.sizes, dtype=float)
    s = np.asarray(cost.counts, dtype=float)
    multi = s >= 2
    labels = np.zeros(len(s), dtype=int)
    if np.any(multi):
        ls = np.log(s[multi])
        edges = np.linspace(ls.min(), ls.max(), max(blocks, 2) + 1)[1:-1]
        labels[multi] = np.searchsorted(edges, ls, side="right")
    single = np.flatnonzero(~multi)
    labels[single] = labels.max(initial=0) + 1 + np.arange(single.size)
    _, labels = np.unique(labels, return_inverse=True)
    sizes = np.bincount(labels, weights=m)
    counts = np.exp(np.bincount(labels, weights=m * np.log(s)) / sizes)
    # Exact counts where a group holds one block (and exactly 1 for single samples).
    one = np.bincount(labels) == 1
    counts[one] = np.bincount(labels, weights=s)[one]
    return labels, sizes, counts


def prolong(coarse, Qc: np.ndarray, null: np.ndarray, labels: np.ndarray,
            geometry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fine block Gram (in the fine cost's variable) of a coarse solution, and its
    null vector.

    The coarse answer is a class Gram ``M`` constant on coarse groups; it is feasible for
    the fine model too, which reads its cosines at the fine blocks: ``B_pq = B_JK`` for
    fine blocks ``p, q`` in coarse groups ``J, K`` (``a_J`` inside one group, and on the
    diagonal of a fine block of several classes). A null vector of ``M`` that is constant
    on coarse groups, ``x_c = n_J / sqrt(m_J)``, gives the fine null vector ``n_p =
    sqrt(m_p / m_J) n_J`` (unit, like ``n``).
    """
    Bc = coarse.cosines(np.array(Qc, dtype=float))
    np.fill_diagonal(Bc, np.where(coarse.sphere, 1.0, np.diag(Bc)))
    Bc = 0.5 * (Bc + Bc.T)
    geo = np.asarray(geometry, dtype=float)
    B = Bc[np.ix_(labels, labels)]
    B[np.diag_indices_from(B)] = np.where(geo >= 2, np.diag(Bc)[labels], 1.0)
    root = np.sqrt(geo)
    Q = B * np.multiply.outer(root, root)
    Q[np.diag_indices_from(Q)] = 1.0 + (geo - 1.0) * np.diag(B)
    n = np.sqrt(geo / coarse.geometry[labels]) * null[labels]
    return Q, n / np.linalg.norm(n)
