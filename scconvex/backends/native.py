"""The native backend: Burer-Monteiro factorisation, Riemannian L-BFGS and certificates.

The class and group levels share one variable, the ``g x g`` block Gram ``Q`` of
:func:`scconvex.model.block_gram` (``Q = M`` at class level), so both are solved the same
way:

* **factor** ``Q = W W^T`` with ``W`` of shape ``(g, r)``. A block of one class needs
  ``Q_pp = 1``: its row of ``W`` lives on the unit sphere. A block of ``m_p >= 2`` classes
  needs ``0 <= Q_pp <= m_p``: its row is free. (The upper bound, ``a_p <= 1``, is never
  active: the loss increases with every cosine.)
* **cost**: ``F(Q) = log(L - sum_c n_c log(n_c - 1))``, the logarithm of the *excess* loss,
  evaluated entirely in log space (MATH.md section 6). It has the minimisers of the loss,
  and its scale does not depend on ``tau``: at ``tau = 0.01`` the excess is about
  ``1e-87`` while ``F`` and its gradient stay of order ``1 / tau``.
* **optimizer**: Riemannian L-BFGS on that product of spheres and Euclidean rows, with a
  row-wise diagonal preconditioner (classes with more samples weigh more in the loss and
  curve it more) and a Wolfe line search that falls back on the slope alone (the
  "approximate Wolfe" test of Hager and Zhang) once differences of ``F`` are rounding
  noise, so that the gradient can be driven far below ``sqrt(eps)``.
* **certificate** (MATH.md section 5) over the same feasible set: ``S = C - Diag(nu)``
  with ``C`` the gradient of ``F`` in ``Q``, ``nu_p = (C Q)_pp`` on sphere rows and 0 on
  free rows. Because ``C`` is the gradient of the (convex) excess divided by the excess,
  ``<S, Q> - k min(0, lambda_min(S))`` bounds the gap of the loss divided by the excess:
  the solver stops when it is below ``tol``. A clearly negative
  ``lambda_min(S)`` at a point where the gradient has vanished is a saddle of the
  factorisation; the solver then adds a column to ``W`` along the eigenvector
  (rank staircase) and continues.

The rank starts at ``g - 1`` (at least 1): the optimum for distinct counts measured so far
has rank ``k - 1`` (the class means sum to a null combination), and starting there avoids
both the slow convergence of an over-parametrised factor and most escapes. The start is
the simplex ETF (the balanced optimum), which is feasible with exactly that rank.

What the backend returns is the raw ``B`` (``M`` at class level); the pipeline repairs
and re-certifies it.

References
----------
S. Burer and R. D. C. Monteiro, "A nonlinear programming algorithm for solving semidefinite
programs via low-rank factorization", Math. Program. 95 (2003).
N. Boumal, V. Voroninski and A. S. Bandeira, "Deterministic guarantees for Burer-Monteiro
factorizations of smooth semidefinite programs", CPAM 73 (2020).
W. W. Hager and H. Zhang, "A new conjugate gradient method with guaranteed descent and an
efficient line search", SIAM J. Optim. 16 (2005).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh
from scipy.linalg.blas import saxpy, sdot
from scipy.special import expit

from ..errors import InvalidInputError
from ..loss import log_softplus
from ..model import Model
from . import Backend, RawResult, register

logger = logging.getLogger(__name__)

_EPS = np.finfo(float).eps

SMALL = 200
"""Models with at most this many blocks get the tighter default ``tol``."""

DEFAULTS = {
    "tol": None,
    "max_iter": 20_000,
    "time_limit": None,
    "rank": None,
    "memory": 5,
}
"""Options of the native backend.

``tol``
    Target certified gap *relative to the excess loss* ``L - sum n_c log(n_c - 1)``; the
    gap relative to the loss is smaller still. None: ``1e-12`` for models of at most
    :data:`SMALL` blocks (cheap, and it pins the cosines down to about ``1e-10``), else
    ``1e-7`` (at k = 1000, tau = 0.1: a loss-relative gap of 3e-10 in about 50 s). A gap
    below the certificate's own rounding floor (about ``eps * k * ||S||``) also counts as
    reached.
``max_iter``
    Total L-BFGS iterations over all ranks.
``time_limit``
    Wall-clock limit in seconds (None: none).
``rank``
    Initial number of columns of the factor (None: ``g - 1``).
``memory``
    Number of L-BFGS correction pairs.
"""


# ---------------------------------------------------------------------- the cost
def _dlog_softplus(r: np.ndarray) -> np.ndarray:
    """Derivative of :func:`~scconvex.loss.log_softplus`: ``sigmoid(r) / log1p(exp(r))``."""
    out = np.empty_like(r)
    low = r < -30.0
    out[low] = 1.0 - 0.5 * np.exp(r[low])
    out[~low] = expit(r[~low]) / np.logaddexp(0.0, r[~low])
    return out


class _LogExcessCost:
    """``F(Q) = log(excess loss)`` of a block Gram ``Q`` and its symmetric gradient.

    With ``B`` the cosines of ``Q`` (:func:`scconvex.model.from_block_gram`), anchor rows
    ``p`` with ``s_p >= 2`` have ``r_p = log(sum_q w_pq exp((B_pq - 1)/tau) / (s_p - 1))``
    and the excess is ``sum_p m_p s_p log1p(exp(r_p))`` (MATH.md sections 4 and 6).
    """

    def __init__(self, sizes: np.ndarray, counts: np.ndarray, tau: float) -> None:
        sizes = np.asarray(sizes, dtype=float)
        counts = np.asarray(counts, dtype=float)
        g = sizes.size
        self.g = g
        self.tau = tau
        self.sizes = sizes
        self.sphere = sizes == 1
        self.class_level = bool(np.all(self.sphere))
        self.active = np.flatnonzero(counts >= 2)
        self.all_active = self.active.size == g
        w = np.broadcast_to(sizes * counts, (g, g)).copy()
        w[np.diag_indices(g)] = (sizes - 1) * counts
        act = self.active
        with np.errstate(divide="ignore"):
            # log(0) = -inf on the diagonal of one-class blocks: those terms vanish.
            self.base = np.log(w[act]) - np.log(counts[act] - 1.0)[:, None] - 1.0 / tau
        self.logmass = np.log((sizes * counts)[self.active])
        self.invroot = 1.0 / np.sqrt(np.outer(sizes, sizes))
        self.free = np.flatnonzero(~self.sphere)
        self.free_den = sizes[self.free] - 1.0

    def cosines(self, Q: np.ndarray) -> np.ndarray:
        """``B`` from ``Q`` (the diagonal of one-class blocks is not used and left as is)."""
        if self.class_level:
            return Q
        B = Q * self.invroot
        B[self.free, self.free] = (Q[self.free, self.free] - 1.0) / self.free_den
        return B

    def __call__(self, Q: np.ndarray) -> tuple[float, np.ndarray]:
        """Return ``F`` and ``C = dF/dQ`` (symmetric, Frobenius pairing)."""
        B = self.cosines(Q)
        rows = B if self.all_active else B[self.active]
        z = rows * (1.0 / self.tau)
        z += self.base
        zmax = np.max(z, axis=1)
        z -= zmax[:, None]
        np.exp(z, out=z)
        tot = np.sum(z, axis=1)
        r = zmax + np.log(tot)
        t = self.logmass + log_softplus(r)
        tmax = float(np.max(t))
        F = tmax + math.log(float(np.sum(np.exp(t - tmax))))
        # d F / d r_p, then d r_p / d B_pq = prob_pq / tau: z becomes the row partials.
        coef = np.exp(t - F) * _dlog_softplus(r) / (self.tau * tot)
        z *= coef[:, None]
        if self.all_active:
            D = z
        else:
            D = np.zeros((self.g, self.g))
            D[self.active] = z
        C = D + D.T
        C *= 0.5
        if not self.class_level:
            diag = np.zeros(self.g)
            diag[self.free] = D[self.free, self.free] / self.free_den
            C *= self.invroot
            C[np.diag_indices(self.g)] = diag
        else:
            C[np.diag_indices(self.g)] = 0.0
        return F, C


# ---------------------------------------------------------------------- the manifold
@dataclass(frozen=True)
class _Rows:
    """Rows of a ``(g, r)`` array: unit-norm where ``sphere`` is True, free elsewhere.

    A product of unit spheres and Euclidean spaces; it knows nothing about the loss.
    """

    sphere: np.ndarray

    def proj(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Tangent projection: remove the radial part of sphere rows."""
        radial = np.einsum("ij,ij->i", X, V) * self.sphere
        return V - radial[:, None] * X

    def retract(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``X + V`` with sphere rows normalised; also returns the row scale factors."""
        Y = X + V
        scale = np.ones(X.shape[0])
        nrm = np.linalg.norm(Y[self.sphere], axis=1)
        scale[self.sphere] = 1.0 / nrm
        Y *= scale[:, None]
        return Y, scale


# ---------------------------------------------------------------------- certificate
@dataclass(frozen=True)
class _Cert:
    gap: float          # certified gap of F, i.e. loss gap / excess
    compl: float        # <S, Q>
    lam: float          # lambda_min(S)
    vec: np.ndarray     # its eigenvector
    floor: float        # rounding floor of gap


def _certificate(Q: np.ndarray, C: np.ndarray, sphere: np.ndarray, k: int) -> _Cert:
    """Certified gap of the excess loss, relative to it, over the block feasible set.

    ``C`` is the gradient of ``F = log E`` (``E`` the excess loss, convex), so ``E C`` is
    the gradient of ``E``. For every feasible ``Y`` (PSD, ``Y_pp = 1`` on one-class
    blocks, ``Y_pp <= m_p`` elsewhere, so ``tr Y <= k``) convexity of ``E`` gives
    ``E(Y) >= E(Q) + E(Q) <C, Y - Q> >= E(Q) (1 - <S, Q> + k min(0, lambda_min(S)))``,
    because ``Diag(nu)`` pairs only with the fixed diagonal entries and ``<S, Y> >=
    lambda_min(S) tr Y``. Hence ``(E(Q) - min E) / E(Q) <= <S, Q> - k min(0,
    lambda_min(S))``: MATH.md section 5, divided by the excess.
    """
    nu = np.einsum("ij,ij->i", C, Q) * sphere
    S = C - np.diag(nu)
    compl = float(np.sum(S * Q))
    lam, vec = eigh(S, subset_by_index=[0, 0], check_finite=False)
    lam0 = float(lam[0])
    gap = compl - k * min(0.0, lam0)
    # Backward-stable eigensolvers err by about eps * ||S||; k multiplies that error.
    norm_s = float(np.linalg.norm(S, ord="fro"))
    floor = 8.0 * _EPS * (k * norm_s + np.sum(np.abs(S * Q)))
    return _Cert(max(gap, 0.0), compl, lam0, vec[:, 0], floor)


# ---------------------------------------------------------------------- optimizer
@dataclass
class _State:
    X: np.ndarray
    F: float
    egrad: np.ndarray
    C: np.ndarray
    Q: np.ndarray


class _Problem:
    """Cost, manifold and preconditioner of the factored problem ``Q = W W^T``."""

    def __init__(self, cost: _LogExcessCost, k: int) -> None:
        self.cost = cost
        self.rows = _Rows(cost.sphere)
        self.k = k
        self.nfev = 0

    def state(self, X: np.ndarray) -> _State:
        Q = X @ X.T
        F, C = self.cost(Q)
        self.nfev += 1
        egrad = C @ X
        egrad *= 2.0
        return _State(X, F, egrad, C, Q)

    def rgrad(self, s: _State) -> np.ndarray:
        return self.rows.proj(s.X, s.egrad)

    def precond(self, s: _State):
        """A diagonal approximate inverse Hessian, one weight per row (a callable).

        Along row ``p`` of ``W`` the Hessian of ``F`` is about
        ``sum_q C_pq |w_q|^2 / tau`` (each softmax entry curves by ``prob / tau``
        relative to its slope): rows of classes with many samples dominate the loss and
        are stiffer, by up to the count ratio. Measured at k = 200, counts 2..600,
        tau = 0.1: 140 iterations without it, 80 with it.
        """
        C = s.C
        sq = np.einsum("ij,ij->i", s.X, s.X)
        # Every entry of C is >= 0: the loss increases with every cosine.
        h = C @ sq / self.cost.tau + np.diag(C)
        h = np.maximum(h, 1e-3 * float(np.mean(h)) + 1e-300)
        return lambda G: G / h[:, None]


@dataclass
class _Outcome:
    X: np.ndarray
    state: _State
    cert: _Cert | None
    iterations: int
    status: str
    message: str


def _lbfgs(problem: _Problem, X0: np.ndarray, *, tol: float, max_iter: int,
           deadline: float, memory: int, cert_every: int = 10,
           max_stalls: int = 20) -> _Outcome:
    """Preconditioned Riemannian L-BFGS, stopped by the certificate.

    Returns when the certified gap of ``F`` is below ``tol`` (or below its rounding floor),
    when the certificate shows a saddle (negative ``lambda_min`` with a vanished gradient:
    the caller raises the rank), or at a limit.
    """
    rows = problem.rows
    s = problem.state(X0)
    g = problem.rgrad(s)
    pairs: deque = deque(maxlen=memory)
    cert: _Cert | None = None
    step_scale = None
    fails = 0
    last_cert_it = -cert_every
    best_gap = math.inf
    stalls = 0
    for it in range(max_iter):
        due = it - last_cert_it >= cert_every or fails > 0
        if due:
            gnorm = float(np.linalg.norm(g))
            last_cert_it = it
            cert = _certificate(s.Q, s.C, rows.sphere, problem.k)
            logger.debug("native: iteration %d, F %.16g, |grad| %.2e, gap %.2e, "
                         "lambda_min %.2e", it, s.F, gnorm, cert.gap, cert.lam)
            if cert.gap <= max(tol, cert.floor):
                return _Outcome(s.X, s, cert, it, "optimal", "certified")
            # A saddle of the factorisation: S is clearly indefinite while S W, the
            # gradient, has (nearly) vanished; near a minimiser |lambda_min| is of the order
            # of the gradient instead.
            gmax = 0.5 * float(np.max(np.linalg.norm(g, axis=1)))
            if (cert.lam < 0 and -cert.lam > 1e3 * cert.floor / problem.k
                    and gmax <= 1e-2 * -cert.lam and s.X.shape[1] < s.X.shape[0]):
                return _Outcome(s.X, s, cert, it, "saddle", "negative curvature")
            if cert.gap < 0.5 * best_gap:
                best_gap = cert.gap
                stalls = 0
            else:
                stalls += 1
            if stalls >= max_stalls:
                return _Outcome(s.X, s, cert, it, "inaccurate",
                                f"no progress over {max_stalls * cert_every} iterations at "
                                f"certified gap {cert.gap:.2e} (relative to the excess loss)")
        if time.perf_counter() > deadline:
            return _Outcome(s.X, s, cert, it, "time_limit", "time limit reached")
        apply_p = problem.precond(s)
        d = _two_loop(g, pairs, apply_p)
        d = rows.proj(s.X, d)
        slope = float(np.vdot(g, d))
        if not slope < 0:
            pairs.clear()
            d = rows.proj(s.X, -apply_p(g))
            slope = float(np.vdot(g, d))
        if pairs:
            t0 = 1.0
        else:
            # First step (or after a reset): move rows by about 1e-2 at most.
            dmax = float(np.max(np.linalg.norm(d, axis=1))) + 1e-300
            t0 = min(1.0, 1e-2 / dmax) if step_scale is None else step_scale
        ok, t, s_new, g_new = _wolfe(problem, s, d, slope, t0)
        if not ok:
            fails += 1
            pairs.clear()
            if fails >= 4:
                cert = _certificate(s.Q, s.C, rows.sphere, problem.k)
                status = "optimal" if cert.gap <= max(tol, cert.floor) else "inaccurate"
                return _Outcome(s.X, s, cert, it, status,
                                f"line search failed; certified gap {cert.gap:.2e} "
                                f"(relative to the excess loss)")
            continue
        fails = 0
        step_scale = t
        # Pairs are kept in the ambient space without transport: the steps are short and
        # projecting every stored vector would cost more than it gains.
        sv = (t * d).astype(np.float32).ravel()
        yv = (g_new - g).astype(np.float32).ravel()
        sy = float(np.dot(sv.astype(float), yv.astype(float)))
        if sy > 1e-6 * float(np.linalg.norm(sv) * np.linalg.norm(yv)):
            pairs.append((sv, yv, 1.0 / sy))
        s, g = s_new, g_new
    cert = _certificate(s.Q, s.C, rows.sphere, problem.k)
    status = "optimal" if cert.gap <= max(tol, cert.floor) else "iteration_limit"
    return _Outcome(s.X, s, cert, max_iter, status, "iteration limit reached")


def _two_loop(g: np.ndarray, pairs, apply_p) -> np.ndarray:
    """L-BFGS direction ``-H g`` with initial matrix ``gamma P`` (``apply_p``).

    Vectors are flat float32 with in-place BLAS updates: at class level with k = 1000 a
    vector has 10^6 entries, the recursion is bound by memory traffic, and a search
    direction needs no more than single precision (the gradient and the line search stay
    in double precision).
    """
    shape = g.shape
    q = g.astype(np.float32).ravel()
    alphas = []
    for sv, yv, rho in reversed(pairs):
        a = rho * sdot(sv, q)
        alphas.append(a)
        q = saxpy(yv, q, a=-a)
    if pairs:
        sv, yv, _ = pairs[-1]
        py = np.asarray(apply_p(yv.reshape(shape)), dtype=np.float32).ravel()
        gamma = sdot(sv, yv) / sdot(yv, py)
    else:
        gamma = 1.0
    q = np.asarray(apply_p(q.reshape(shape)), dtype=np.float32).ravel()
    q *= gamma
    for (sv, yv, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * sdot(yv, q)
        q = saxpy(sv, q, a=a - b)
    return -q.reshape(shape).astype(float)


def _wolfe(problem: _Problem, s: _State, d: np.ndarray, slope: float, t0: float,
           c1: float = 1e-4, c2: float = 0.9, max_eval: int = 25):
    """Weak Wolfe line search along ``t -> retract(X, t d)`` with bisection/secant zoom.

    Sufficient decrease is the Armijo test or, when ``F`` cannot resolve the decrease,
    the approximate Wolfe test ``phi'(t) <= (2 c1 - 1) phi'(0)`` on the slope alone.
    """
    rows = problem.rows
    noise = 4.0 * _EPS * (abs(s.F) + 1.0)
    lo, hi = 0.0, math.inf
    dlo = slope
    t = t0
    for _ in range(max_eval):
        Xt, scale = rows.retract(s.X, t * d)
        st = problem.state(Xt)
        if not np.isfinite(st.F):
            hi = t
            t = 0.5 * (lo + hi)
            continue
        gt = problem.rgrad(st)
        # d/dt of the retraction is the tangent projection of d, scaled on sphere rows.
        dphi = float(np.vdot(gt, d * scale[:, None]))
        armijo = st.F <= s.F + c1 * t * slope
        approx = st.F <= s.F + noise and dphi <= (2 * c1 - 1) * slope
        if not (armijo or approx):
            hi, dhi = t, dphi
        elif dphi < c2 * slope:
            lo, dlo = t, dphi
        else:
            return True, t, st, gt
        if math.isinf(hi):
            t *= 4.0
            continue
        if lo > 0 and dhi > 0 and dlo < 0:
            # Secant on the slope, kept inside the bracket.
            t = lo - dlo * (hi - lo) / (dhi - dlo)
            t = min(max(t, lo + 0.1 * (hi - lo)), hi - 0.1 * (hi - lo))
        elif lo == 0 and dhi > 0:
            t = -slope * hi / (dhi - slope)
            t = min(max(t, 0.05 * hi), 0.9 * hi)
        else:
            t = 0.5 * (lo + hi)
    return False, t, None, None


# ---------------------------------------------------------------------- driver
def _start(model: Model, rank: int) -> np.ndarray:
    """The simplex ETF as a factor of ``rank`` columns.

    All class means at cosine ``-1/(k-1)`` give ``Q = (k I - u u^T) / (k - 1)`` with
    ``u = sqrt(m)``, a scaled projector onto ``u``-perp, of rank ``g - 1``. With fewer
    columns (the ``rank`` option) the first ones are kept and sphere rows renormalised.
    """
    m = model.sizes.astype(float)
    k = float(np.sum(m))
    g = m.size
    u = np.sqrt(m) / math.sqrt(k)
    # Householder reflection mapping e_0 to u: its other columns span u-perp.
    e = np.zeros(g)
    e[0] = 1.0
    v = u - e
    nv = float(np.linalg.norm(v))
    H = np.eye(g) if nv == 0 else np.eye(g) - 2.0 * np.outer(v, v) / nv**2
    basis = H[:, 1:] * math.sqrt(k / (k - 1.0))
    X = np.zeros((g, rank))
    X[:, : min(rank, g - 1)] = basis[:, : min(rank, g - 1)]
    if rank < g - 1:
        sphere = m == 1
        nrm = np.linalg.norm(X, axis=1)
        # A row that lost all its mass gets a fixed unit vector (any feasible point will do).
        X[sphere & (nrm < 1e-8), 0] = 1.0
        nrm = np.linalg.norm(X, axis=1)
        X[sphere] /= nrm[sphere, None]
    return X


def _escape(problem: _Problem, s: _State, cert: _Cert) -> np.ndarray:
    """Add a column along the eigenvector of ``lambda_min(S)``; pick the best step."""
    rows = problem.rows
    X = np.hstack([s.X, np.zeros((s.X.shape[0], 1))])
    direction = np.zeros_like(X)
    direction[:, -1] = cert.vec
    best = (s.F, X)
    for alpha in (0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4):
        Y, _ = rows.retract(X, alpha * rows.proj(X, direction))
        st = problem.state(Y)
        if st.F < best[0]:
            best = (st.F, Y)
            break
    return best[1]


def _check(options: dict, g: int) -> dict:
    tol = options["tol"]
    if tol is None:
        # Above SMALL blocks each iteration costs O(g^2 r); 1e-7 of the excess is already
        # a gap of ~1e-10 of the loss at k = 1000 (measured), and 30% faster than 1e-9.
        tol = 1e-12 if g <= SMALL else 1e-7
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (
            math.isfinite(tol) and tol > 0):
        raise InvalidInputError(f"native option tol must be a positive number, got {tol!r}")
    out = {"tol": float(tol)}
    for name, low in (("max_iter", 1), ("memory", 1)):
        v = options[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise InvalidInputError(f"native option {name} must be an integer >= {low}, "
                                    f"got {v!r}")
        out[name] = int(v)
    limit = options["time_limit"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                              or not limit > 0 or math.isnan(limit)):
        raise InvalidInputError(f"native option time_limit must be a positive number or "
                                f"None, got {limit!r}")
    out["time_limit"] = None if limit is None else float(limit)
    rank = options["rank"]
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer))
                             or rank < 1):
        raise InvalidInputError(f"native option rank must be an integer >= 1 or None, "
                                f"got {rank!r}")
    out["rank"] = None if rank is None else int(rank)
    return out


def run(model: Model, options: dict) -> RawResult:
    """Solve a class- or group-level model; see the module docstring.

    Parameters
    ----------
    model : Model
        At level ``"class"`` or ``"group"``.
    options : dict
        Validated against :data:`DEFAULTS`.

    Returns
    -------
    RawResult
        ``X`` is the cosine matrix ``B`` (``M`` at class level). ``status`` is
        ``"optimal"`` only when the native certificate proves a gap below ``tol`` relative
        to the excess loss (or below the certificate's own rounding floor).

    Raises
    ------
    InvalidInputError
        If an option has a bad type or value.
    """
    opts = _check(options, model.dim)
    t_start = time.perf_counter()
    deadline = math.inf if opts["time_limit"] is None else t_start + opts["time_limit"]
    spec = model.spec
    known = model.relaxation.closed_form(model)
    if known is not None:
        return RawResult("optimal", known, f"closed form of the {spec.relaxation!r} "
                         "relaxation (to be certified)", 0, {})
    cost = model.loss.native_cost(model)
    g = model.dim
    k = spec.k
    if g == 1:
        # One block of equal counts: the simplex ETF is optimal by symmetry and convexity.
        B = np.array([[-1.0 / (k - 1)]])
        return RawResult("optimal", B, "a single group: the simplex ETF", 0,
                         {"rank": 0, "excess_gap": 0.0, "gap_floor": 0.0})
    if k == 2:
        # Two classes: the loss increases with their one cosine, so -1 is optimal (for the
        # negatives-only loss the excess is then 0 and its logarithm undefined).
        return RawResult("optimal", np.array([[1.0, -1.0], [-1.0, 1.0]]),
                         "two classes: antipodal means", 0,
                         {"rank": 1, "excess_gap": 0.0, "gap_floor": 0.0})
    problem = _Problem(cost, k)
    rank = opts["rank"] if opts["rank"] is not None else max(g - 1, 1)
    rank = min(rank, g)
    X = _start(model, rank)
    total = 0
    escapes = 0
    while True:
        out = _lbfgs(problem, X, tol=opts["tol"], max_iter=opts["max_iter"] - total,
                     deadline=deadline, memory=opts["memory"])
        total += out.iterations
        if out.status != "saddle":
            break
        if out.X.shape[1] >= g or total >= opts["max_iter"]:
            out.status = "inaccurate"
            break
        logger.info("native: saddle at rank %d (lambda_min %.2e); escaping",
                    out.X.shape[1], out.cert.lam)
        X = _escape(problem, out.state, out.cert)
        escapes += 1
    s = out.state
    if not np.all(np.isfinite(s.Q)):
        return RawResult("error", None, "non-finite iterate", total, {})
    B = cost.cosines(s.Q.copy())
    np.fill_diagonal(B, np.where(cost.sphere, 1.0, np.diag(B)))
    B = 0.5 * (B + B.T)
    cert = out.cert
    status, msg = out.status, out.message
    free = ~cost.sphere
    if np.any(np.diag(B)[free] > 1.0 + 1e-12):
        # a_p > 1 is infeasible (never optimal: the loss increases with a_p); say so.
        status, msg = "inaccurate", "a within-group cosine exceeds 1"
    info = {"rank": int(s.X.shape[1]), "escapes": escapes, "evaluations": problem.nfev,
            "excess_gap": float(cert.gap) if cert else math.nan,
            "gap_floor": float(cert.floor) if cert else math.nan,
            "min_eig_slack": float(cert.lam) if cert else math.nan,
            "log_excess": float(s.F), "seconds": time.perf_counter() - t_start}
    if cert is not None:
        msg = f"{msg}; certified gap / excess loss {cert.gap:.2e}"
    return RawResult(status, B, msg, total, info)


register(Backend("native", levels=("class", "group"), options=DEFAULTS,
                 requires=("numpy", "scipy"), run=run, relaxations=("elliptope", "dnn")))
