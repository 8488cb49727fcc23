"""The native backend: Newton steps in the block Gram or its factor, and certificates.

The class and group levels share one variable, the ``g x g`` block Gram ``Q`` of
:func:`scconvex.levels.blocks.block_gram` (``Q = M`` at class level), so both are solved the
same way. Above :data:`SMALL` blocks (option ``variable``) the run is in ``Q`` itself:

* **Gram route** (:mod:`scconvex.solvers.corank`): a coarser model (blocks of similar
  counts merged, ``g / 8`` blocks) is solved first, recursively, and its class Gram, which
  is feasible as it is, is read off at the fine blocks: a point of rank ``g - 1`` with a
  certified gap near ``1e-2``. Truncated Newton steps on the manifold of PSD matrices of
  rank ``g - 1`` follow, each a few passes over ``g x g`` arrays and one Cholesky
  factorisation (no ``g x g x r`` product): the face-curvature part of the Hessian is
  inverted exactly by a Woodbury preconditioner, so conjugate gradients take one or two
  products per step, and a Cholesky factorisation tests the certificate instead of an
  eigenvalue solve. A stall or a failed step there (an optimum of lower rank) hands the
  point to the factor below.

Otherwise (and after such a hand-over) the factor:

* **factor** ``Q = W W^T`` with ``W`` of shape ``(g, r)``. A block of one class needs
  ``Q_pp = 1``: its row of ``W`` lives on the unit sphere. A block of ``m_p >= 2`` classes
  needs ``0 <= Q_pp <= m_p``: its row is free. (The upper bound, ``a_p <= 1``, is never
  active: the loss increases with every cosine.) A block of single-sample classes is held
  at ``a_p = 1`` and solved as one unit vector (the cost's ``geometry``,
  :func:`scconvex.losses.base.native_geometry`).
* **cost**: ``F(Q) = log(L - sum_c n_c log(n_c - 1))``, the logarithm of the *excess* loss,
  evaluated entirely in log space (MATH.md section 6). It has the minimisers of the loss,
  and its scale does not depend on ``tau``: at ``tau = 0.01`` the excess is about
  ``1e-87`` while ``F`` and its gradient stay of order ``1 / tau``.
* **optimizer**: the Riemannian L-BFGS of :mod:`scconvex.solvers.optim` (shared with the
  non-convex solver) on that product of spheres and Euclidean rows
  (:class:`scconvex.solvers.manifold.Rows`), with a row-wise diagonal preconditioner (classes with
  more samples weigh more in the loss and curve it more) and a Wolfe line search that
  falls back on the slope alone once differences of ``F`` are rounding noise, so that the
  gradient can be driven far below ``sqrt(eps)``; once the certified gap is below
  ``newton_gap``, a truncated Newton method (:func:`scconvex.solvers.optim.newton_cg`) finishes
  the run. Its systems are solved in ``Q`` on the face of the PSD cone that holds the
  iterate, with ``O(g^2)`` Hessian products, and the step is lifted to ``W``
  (:mod:`scconvex.solvers.face`); where that face model does not apply (a lower-rank
  optimum) the system is solved in ``W``, with Hessian-vector products in block form
  (:meth:`_Problem.hessian`, three ``g x g x r`` float32 products each).
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
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cholesky, eigh

from ..errors import InvalidInputError
from ..levels import CLASS, GROUP
from ..problem.model import Model
from .base import Backend, RawResult, register
from .corank import GramProblem, coarsen, prolong
from .face import FaceNewton
from .manifold import Rows
from .optim import Point, lbfgs, newton_cg

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
    "newton": True,
    "newton_gap": 1e-2,
    "face": True,
    "variable": "auto",
}
"""Options of the native backend.

``tol``
    Target certified gap *relative to the excess loss* ``L - sum n_c log(n_c - 1)``; the
    gap relative to the loss is smaller still. None: ``1e-12`` for models of at most
    :data:`SMALL` blocks (cheap, and it pins the cosines down to about ``1e-10``), else
    ``1e-9``: at k = 1000, tau = 0.1 two runs from different starts then agree on every
    cosine to 1e-7, against 1e-4 at ``1e-7`` (a gap of ``1e-7`` of the excess leaves the
    flattest directions of the loss loose), for one more Newton step. The run also stops
    at the certificate's own rounding floor (about ``eps * k * ||S||``), and says so.
``max_iter``
    Total L-BFGS iterations over all ranks.
``time_limit``
    Wall-clock limit in seconds (None: none).
``rank``
    Initial number of columns of the factor (None: ``g - 1``).
``memory``
    Number of L-BFGS correction pairs.
``newton``
    Finish with the Riemannian truncated Newton method of :mod:`scconvex.optim` (False:
    L-BFGS to the end).
``newton_gap``
    Certified gap (relative to the excess) below which L-BFGS hands over to it.
``face``
    Solve each Newton system in ``Q`` on the face of the PSD cone and lift the step to the
    factor (:mod:`scconvex.solvers.face`; False: solve it in the factor). The factor
    takes the step where the face model does not hold: a numerically rank-deficient
    factor, or an optimum of lower rank than the factor (two rejected steps, or two
    stalled ones, end the face for the run).
``variable``
    ``"gram"``: optimise over the block Gram ``Q`` itself, on the PSD matrices of rank
    ``g - 1`` (:mod:`scconvex.solvers.corank`: no ``g x g x r`` products), and continue
    in the factor if that stalls (an optimum of lower rank); ``"factor"``: over ``W``;
    ``"auto"``: ``"gram"`` above :data:`SMALL` blocks (when ``rank`` is not set).
"""


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
    S, compl, floor = _slack(Q, C, sphere, k)
    lam, vec = eigh(S, subset_by_index=[0, 0], check_finite=False, overwrite_a=True)
    lam0 = float(lam[0])
    gap = compl - k * min(0.0, lam0)
    # Backward-stable eigensolvers err by about eps * ||S||; k multiplies that error (the
    # floor of _slack).
    return _Cert(max(gap, 0.0), compl, lam0, vec[:, 0], floor)


def _slack(Q: np.ndarray, C: np.ndarray, sphere: np.ndarray, k: int):
    """``S = C - Diag(nu)``, ``<S, Q>`` and the rounding floor of :func:`_certificate`."""
    nu = np.einsum("ij,ij->i", C, Q) * sphere
    S = C.copy()
    S[np.diag_indices_from(S)] -= nu
    compl = float(np.vdot(S, Q))
    # sum |S o Q| <= |S|_F |Q|_F (no g x g temporary).
    norm_s = float(np.linalg.norm(S))
    floor = 8.0 * _EPS * norm_s * (k + float(np.linalg.norm(Q)))
    return S, compl, floor


def _certificate_below(Q: np.ndarray, C: np.ndarray, sphere: np.ndarray, k: int,
                       target: float) -> _Cert | None:
    """The certificate of :func:`_certificate` when its gap is at most ``target`` (or its
    rounding floor), from one Cholesky factorisation instead of an eigenvalue solve; else
    None.

    ``S + delta I`` positive definite, ``delta = (target - <S, Q>) / k``, means
    ``lambda_min(S) > -delta`` and so a gap below ``<S, Q> + k delta = target``. A
    factorisation costs a sixth of the eigenvalue solve (g = 2987: 0.2 s against 1.4 s).
    Like the eigenvalue solve it is a stopping rule, not the proof: the pipeline
    certifies the answer on its own (:mod:`scconvex.certify`).
    """
    S, compl, floor = _slack(Q, C, sphere, k)
    goal = max(target, floor)
    delta = (goal - compl) / k
    if not delta > 0:
        return None
    S[np.diag_indices_from(S)] += delta
    try:
        cholesky(S, lower=True, overwrite_a=True, check_finite=False)
    except LinAlgError:
        return None
    return _Cert(goal, compl, -delta, np.zeros(0), floor)


# ---------------------------------------------------------------------- the problem
class _Problem:
    """Cost, manifold and preconditioner of the factored problem ``Q = W W^T``
    (the :class:`scconvex.solvers.optim.Problem` interface)."""

    def __init__(self, cost, k: int, face: bool = False) -> None:
        self.cost = cost
        self.manifold = Rows(cost.sphere)
        self.k = k
        self._costs: dict = {}
        self.face = None
        if face and hasattr(cost, "hess_diagonal"):
            # Above SMALL blocks the face systems run in float32, like the factor's
            # Hessian products (half the memory traffic; directions need no more).
            dtype = np.float32 if cost.g > SMALL else np.float64
            self.face = FaceNewton(self.cost_in(dtype), dtype)
        self.face_steps = 0

    def newton_direction(self, p: Point, eta: float, max_cg: int,
                         deadline: float) -> np.ndarray | None:
        """A Newton direction solved on the face of the PSD cone that holds ``Q``
        (:mod:`scconvex.solvers.face`), or None to solve in ``W``."""
        if self.face is None:
            return None
        Q, C, state = p.data
        # Its Hessian products are O(g^2), against O(g^2 r) in W: four times the cap.
        d = self.face.direction(p.X, Q, C, state, eta, 4 * max_cg, deadline)
        self.face_steps += d is not None
        return d

    def evaluate(self, X: np.ndarray) -> Point:
        """``F(W W^T)`` and its Riemannian gradient; ``data`` holds ``(Q, C)``."""
        Q = X @ X.T
        if hasattr(self.cost, "evaluate"):
            F, C, state = self.cost.evaluate(Q)
        else:
            (F, C), state = self.cost(Q), None
        egrad = C @ X
        egrad *= 2.0
        return Point(X, F, self.manifold.proj(X, egrad, inplace=True), (Q, C, state))

    def cost_in(self, dtype: type):
        """The cost with its second derivatives in ``dtype`` (made once per dtype)."""
        if dtype == np.float64 or not hasattr(self.cost, "astype"):
            return self.cost
        if dtype not in self._costs:
            self._costs[dtype] = self.cost.astype(dtype)
        return self._costs[dtype]

    @property
    def has_hessian(self) -> bool:
        """Whether the cost provides second derivatives (:meth:`hessian`)."""
        return hasattr(self.cost, "hess")

    def hessian(self, p: Point, dtype: type = np.float64):
        """Riemannian Hessian of ``F(W W^T)`` at ``p``: a function of tangent vectors.

        The Euclidean gradient is ``2 C W``; along ``V`` it moves by ``2 (C' W + C V)``
        with ``C' = D C [V W^T + W V^T]`` (the cost's ``hessian_operator``): three
        ``g x g x r`` products (OpenBLAS's ``syr2k`` measured slower than one ``gemm``). On
        sphere rows the Riemannian Hessian is the tangent projection of that minus
        ``<w_p, (2 C W)_p> v_p`` (the curvature of the sphere, Absil, Mahony and
        Sepulchre, section 5.5); free rows are flat.

        ``dtype=np.float32`` halves the cost of the products: Newton directions need no
        more (the gradient, line search and certificate stay in float64).
        """
        X = p.X.astype(dtype)
        Q, C, state = p.data
        C = C.astype(dtype)
        state = tuple(np.asarray(x, dtype=dtype) for x in state)
        radial = 2.0 * np.einsum("ij,ij->i", p.data[1], Q) * self.manifold.sphere
        man = self.manifold
        X64 = p.X
        hess = self.cost_in(dtype).hessian_operator(state)

        def apply(V: np.ndarray) -> np.ndarray:
            Vc = V.astype(dtype)
            E = Vc @ X.T
            E += E.T
            H = hess(E) @ X
            H += C @ Vc
            H = H.astype(float)
            H *= 2.0
            H = man.proj(X64, H, inplace=True)
            H -= radial[:, None] * V
            return H

        return apply

    def precondition(self, p: Point) -> np.ndarray:
        """Row weights ``h`` of a diagonal approximate Hessian (divide row ``p`` by ``h_p``).

        Along row ``p`` of ``W`` the Hessian of ``F`` is about
        ``sum_q c_pq C_pq |w_q|^2 / tau`` (each softmax entry curves by ``prob / tau``
        relative to its slope), with ``c_pq = 1 / sqrt(m_p m_q)`` the factor from ``Q``
        to the cosines ``B`` (1 at class level): ``C`` carries it once, the curvature
        twice. Rows of classes with many samples dominate the loss and are stiffer, by up
        to the count ratio. Measured at k = 200, counts 2..600, tau = 0.1: 140 iterations
        without it, 80 with it. At group level the second ``c_pq`` matters: on the
        8142-class long tail (999 groups of up to 532 classes) L-BFGS went from
        uncertified at 60 s (gap 1e-4 of the excess) to certified (1e-7) in 38 s.
        """
        C = p.data[1]
        sq = np.einsum("ij,ij->i", p.X, p.X)
        # Every entry of C is >= 0: the loss increases with every cosine.
        if self.cost.class_level:
            curv = C
        elif hasattr(self.cost, "_scale"):
            curv = self.cost._scale(C)
        else:
            curv = C * self.cost.invroot
        h = curv @ sq / self.cost.tau + np.diag(C)
        return np.maximum(h, 1e-3 * float(np.mean(h)) + 1e-300)


class _Certifying:
    """The certificate of a point (:func:`_certificate`), computed once per point."""

    problem: _Problem
    _cached: tuple[Point, _Cert] | None

    def certify(self, p: Point) -> _Cert:
        if self._cached is None or self._cached[0] is not p:
            Q, C = p.data[:2]
            self._cached = (p, _certificate(Q, C, self.problem.manifold.sphere,
                                            self.problem.k))
        return self._cached[1]


class _Monitor(_Certifying):
    """Stops :func:`scconvex.solvers.optim.lbfgs` on the certificate, checked every
    ``cert_every`` iterations (and after every failed line search).

    Verdicts: ``("optimal", msg)`` when the certified gap of ``F`` is below ``tol`` (or
    below its rounding floor); ``("saddle", msg)`` when the certificate shows a saddle
    (negative ``lambda_min`` with a vanished gradient: the caller raises the rank);
    ``("inaccurate", msg)`` when the gap stops halving.
    """

    def __init__(self, problem: _Problem, tol: float, cert_every: int = 10,
                 max_stalls: int = 20, switch: float | None = None,
                 cached: tuple[Point, _Cert] | None = None) -> None:
        self.problem = problem
        self.tol = tol
        self.switch = switch
        self.cert_every = cert_every
        self.max_stalls = max_stalls
        self.last_it = -cert_every
        self.best = math.inf
        self.stalls = 0
        self._cached = cached

    def __call__(self, it: int, p: Point, fails: int):
        if it - self.last_it < self.cert_every and fails == 0:
            return None
        self.last_it = it
        cert = self.certify(p)
        logger.debug("native: iteration %d, F %.16g, |grad| %.2e, gap %.2e, lambda_min %.2e",
                     it, p.F, float(np.linalg.norm(p.grad)), cert.gap, cert.lam)
        if cert.gap <= self.tol:
            return "optimal", "certified"
        if cert.gap <= cert.floor:
            # Not a proof at tol: float64 cannot resolve the gap further here. The pipeline
            # certifies (or refuses) the answer on its own.
            return "optimal", (f"stopped at the rounding floor of the certificate "
                               f"({cert.floor:.1e} of the excess loss, above tol {self.tol:.0e})")
        if self.switch is not None and cert.gap <= self.switch:
            return "newton", "switch to truncated Newton"
        # A saddle of the factorisation: S is clearly indefinite while S W, the gradient,
        # has (nearly) vanished; near a minimiser |lambda_min| is of the order of the
        # gradient instead.
        k = self.problem.k
        gmax = 0.5 * float(np.max(np.linalg.norm(p.grad, axis=1)))
        if (cert.lam < 0 and -cert.lam > 1e3 * cert.floor / k and gmax <= 1e-2 * -cert.lam
                and p.X.shape[1] < p.X.shape[0]):
            return "saddle", "negative curvature"
        if cert.gap < 0.5 * self.best:
            self.best = cert.gap
            self.stalls = 0
        else:
            self.stalls += 1
            if self.stalls >= 2 and self.problem.face is not None:
                # Newton steps on the face of the PSD cone need the optimum inside that
                # face; when they stop paying, solve the rest in the factor.
                self.problem.face.usable = False
        if self.stalls >= self.max_stalls:
            return "inaccurate", (f"no progress over {self.max_stalls * self.cert_every} "
                                  f"iterations at certified gap {cert.gap:.2e} (relative to "
                                  f"the excess loss)")
        return None


class _NewtonMonitor(_Certifying):
    """Stops Newton steps in ``Q`` (:class:`scconvex.solvers.corank.GramProblem`) on
    the certificate, tested by one Cholesky factorisation per step
    (:func:`_certificate_below`) instead of an eigenvalue solve.

    Verdicts: ``("optimal", msg)`` when the certified gap is below ``tol`` (or its
    rounding floor); ``("inaccurate", msg)`` when the Riemannian gradient has not halved
    over ``max_stalls`` steps (Newton converges superlinearly on the rank ``g - 1``
    manifold; when it does not, the optimum lies off it). :meth:`estimate` is the gap the
    forcing term assumes: ``ratio`` times the gradient norm (measured on the
    21841-class long tail: gap / |grad| between 130 and 7400 over a run).
    """

    def __init__(self, problem, tol: float, max_stalls: int = 3,
                 ratio: float = 1e3) -> None:
        self.problem = problem
        self.tol = tol
        self.max_stalls = max_stalls
        self.ratio = ratio
        self.best = math.inf
        self.stalls = 0
        self._cached: tuple[Point, _Cert] | None = None

    def estimate(self, p: Point) -> float:
        return max(self.ratio * float(np.linalg.norm(p.grad)), self.tol)

    def __call__(self, it: int, p: Point, fails: int):
        Q, C = p.data[:2]
        cert = _certificate_below(Q, C, self.problem.manifold.sphere, self.problem.k,
                                  self.tol)
        gnorm = float(np.linalg.norm(p.grad))
        rcond = self.problem.manifold.conditioning(p.X)
        logger.debug("native: Newton %d in Q, F %.16g, |grad| %.2e, gap %s, rcond %.1e", it,
                     p.F, gnorm, "above tol" if cert is None else f"below {cert.gap:.1e}",
                     rcond)
        if cert is not None:
            self._cached = (p, cert)
            if cert.gap <= self.tol:
                return "optimal", "certified"
            return "optimal", (f"stopped at the rounding floor of the certificate "
                               f"({cert.gap:.1e} of the excess loss, above tol "
                               f"{self.tol:.0e})")
        if gnorm < 0.5 * self.best:
            self.best = gnorm
            self.stalls = 0
        else:
            self.stalls += 1
        if self.stalls >= self.max_stalls:
            return "inaccurate", (f"the gradient did not halve over {self.max_stalls} "
                                  "Newton steps in Q")
        return None


@dataclass
class _Outcome:
    point: Point
    cert: _Cert
    iterations: int
    evaluations: int
    status: str
    message: str
    newton: int = 0     # iterations of truncated Newton among ``iterations``


_ENDINGS = {"line_search": "inaccurate", "time_limit": "time_limit",
            "iteration_limit": "iteration_limit", "non_finite": "error"}
"""Raw status of an optimizer run that the certificate did not stop."""


def _minimize(problem: _Problem, X0: np.ndarray | Point, *, tol: float, max_iter: int,
              deadline: float, memory: int, newton_gap: float | None = None) -> _Outcome:
    """One run at a fixed rank, stopped by the certificate: L-BFGS, then (once the
    certified gap is below ``newton_gap``) truncated Newton; when Newton stalls, L-BFGS
    again. ``newton_gap = inf``: Newton
    only, stopped by :class:`_NewtonMonitor`."""
    newton = 0
    if newton_gap == math.inf:
        # Newton from the start (in Q, from a coarse solution): no L-BFGS, and a
        # certificate that costs one Cholesky factorisation per step.
        monitor = _NewtonMonitor(problem, tol)
        out = newton_cg(problem, X0, monitor=monitor, max_iter=max_iter, deadline=deadline,
                        hess_dtype=np.float32,
                        enough=lambda p: tol / (3.0 * monitor.estimate(p)))
        newton = out.iterations
    else:
        switch = newton_gap if problem.has_hessian else None
        monitor = _Monitor(problem, tol, switch=switch)
        # float32 pairs: F is the log of the excess, so gradients stay of order 1 / tau.
        out = lbfgs(problem, X0, monitor=monitor, max_iter=max_iter, memory=memory,
                    deadline=deadline, pair_dtype=np.float32)
    if out.verdict is not None and out.verdict[0] == "newton":
        done = out.iterations
        evals = out.evaluations
        # Each Newton step costs many Hessian products: certify after every one.
        # Its first check is at the point where L-BFGS stopped, already certified.
        monitor = _Monitor(problem, tol, cert_every=1, max_stalls=3, cached=monitor._cached)
        # The certified gap falls about in proportion to the gradient: a CG residual of
        # a third of tol / gap is enough for this step (a smaller forcing term only
        # overshoots the target at the price of many more Hessian products).
        out = newton_cg(problem, out.point, monitor=monitor,
                        max_iter=max(max_iter - done, 1), deadline=deadline,
                        hess_dtype=np.float32,
                        enough=lambda p: tol / (3.0 * max(monitor.certify(p).gap, tol)))
        newton = out.iterations
        out.iterations += done
        out.evaluations += evals
        stalled = out.status == "line_search" or (
            out.verdict is not None and out.verdict[0] == "inaccurate")
        if stalled and out.iterations < max_iter and time.perf_counter() < deadline:
            # Newton stalls where the optimum has a lower rank than the factor (its
            # Hessian is singular there); L-BFGS goes on (measured: 1135 classes in 398
            # random groups at tau = 0.074, Newton stuck at 1e-4, L-BFGS certified).
            logger.info("native: Newton stalled at gap %.2e; back to L-BFGS",
                        monitor.certify(out.point).gap)
            done, evals = out.iterations, out.evaluations
            monitor = _Monitor(problem, tol)
            out = lbfgs(problem, out.point, monitor=monitor, max_iter=max_iter - done,
                        memory=memory, deadline=deadline, pair_dtype=np.float32)
            out.iterations += done
            out.evaluations += evals
    if out.status == "non_finite":
        nan = math.nan
        return _Outcome(out.point, _Cert(nan, nan, nan, np.zeros(0), nan), 0,
                        out.evaluations, "error", out.message)
    cert = monitor.certify(out.point)
    if out.verdict is not None:
        status, message = out.verdict
    elif cert.gap <= max(tol, cert.floor):
        status, message = "optimal", out.message
    else:
        status = _ENDINGS[out.status]
        message = (f"{out.message}; certified gap {cert.gap:.2e} (relative to the excess "
                   "loss)")
    return _Outcome(out.point, cert, out.iterations, out.evaluations, status, message,
                    newton)


# ---------------------------------------------------------------------- driver
def _start(sizes: np.ndarray, rank: int) -> np.ndarray:
    """The simplex ETF as a factor of ``rank`` columns.

    All class means at cosine ``-1/(k-1)`` give ``Q = (k I - u u^T) / (k - 1)`` with
    ``u = sqrt(m)``, a scaled projector onto ``u``-perp, of rank ``g - 1``. With fewer
    columns (the ``rank`` option) the first ones are kept and sphere rows renormalised.
    """
    m = np.asarray(sizes, dtype=float)
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


def _escape(problem: _Problem, p: Point, cert: _Cert) -> np.ndarray:
    """Add a column along the eigenvector of ``lambda_min(S)``; pick the best step."""
    man = problem.manifold
    X = np.hstack([p.X, np.zeros((p.X.shape[0], 1))])
    direction = np.zeros_like(X)
    direction[:, -1] = cert.vec
    for alpha in (0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4):
        Y = man.retract(X, alpha * man.proj(X, direction))
        if problem.evaluate(Y).F < p.F:
            return Y
    return X


def _inside(model: Model, B: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """``B`` moved towards the orthogonal geometry by ``t`` just above the rounding of an
    eigenvalue solve, so that the pipeline's PSD test accepts it as it is.

    The optimum has a zero eigenvalue (rank g - 1), which computes as +-1e-14; a negative
    one makes the repair mix and decompose the answer once more (1.6 s at g = 3000).
    Mixing lifts every eigenvalue of the class Gram by ``t (1 - lambda)`` and changes the
    loss by about ``t / tau`` relative to it: with ``t = 64 eps (g + sqrt(g) |Q|_F)`` (6e-11
    at g = 2987) far below any tolerance.
    """
    t = 64.0 * _EPS * (model.dim + math.sqrt(model.dim) * float(np.linalg.norm(Q)))
    return (1.0 - t) * B + t * model.identity()


def _check(options: dict, g: int) -> dict:
    tol = options["tol"]
    if tol is None:
        # Above SMALL blocks each step costs O(g^2 r) or more: stop where the cosines are
        # pinned to about 1e-7 (measured at k = 1000).
        tol = 1e-12 if g <= SMALL else 1e-9
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
    switch = options["newton_gap"]
    if isinstance(switch, bool) or not isinstance(switch, (int, float)) or not (
            math.isfinite(switch) and switch > 0):
        raise InvalidInputError(f"native option newton_gap must be a positive number, "
                                f"got {switch!r}")
    out["newton_gap"] = float(switch) if options["newton"] else None
    for name in ("newton", "face"):
        if not isinstance(options[name], (bool, np.bool_)):
            raise InvalidInputError(f"native option {name} must be True or False, "
                                    f"got {options[name]!r}")
    out["face"] = bool(options["face"])
    if options["variable"] not in ("auto", "gram", "factor"):
        raise InvalidInputError(f"native option variable must be 'auto', 'gram' or 'factor', "
                                f"got {options['variable']!r}")
    out["variable"] = options["variable"]
    return out


def _use_gram(opts: dict, cost, g: int) -> bool:
    """Whether the run starts in ``Q`` (the ``variable`` option)."""
    if not hasattr(cost, "hess_diagonal") or g < 3:
        return False
    if opts["variable"] == "auto":
        return g > SMALL and opts["rank"] is None
    return opts["variable"] == "gram"


@dataclass
class _Solved:
    """The end of :func:`_solve` and what it took."""

    out: _Outcome | None = None
    iterations: int = 0
    evaluations: int = 0
    newton: int = 0
    escapes: int = 0
    face_steps: int = 0
    variable: str = "factor"
    coarse: list = field(default_factory=list)  # blocks of each coarser level solved
    null: np.ndarray | None = None              # null vector of Q (variable "gram")

    def add(self, out: _Outcome) -> None:
        self.iterations += out.iterations
        self.evaluations += out.evaluations
        self.newton += out.newton


COARSE_RATIO = 8
"""A model of ``g`` blocks is started from the solution of one of about ``g /
COARSE_RATIO`` blocks (:func:`_coarse_start`)."""

COARSE_TOL = 1e-6
"""Certified gap (relative to the excess) to which a coarser level is solved: it only
provides a start."""


def _solve(cost, k: int, geometry: np.ndarray, opts: dict, deadline: float) -> _Solved:
    """Minimise ``cost``: in ``Q`` from the prolonged solution of a coarser model when
    :func:`_use_gram` says so (Newton steps on the rank ``g - 1`` manifold), else (or when
    that stalls) in the factor from the simplex ETF, with rank escapes."""
    g = cost.g
    solved = _Solved()
    rank = opts["rank"] if opts["rank"] is not None else max(g - 1, 1)
    rank = min(rank, g)
    X = None
    if _use_gram(opts, cost, g):
        start = _coarse_start(cost, k, opts, deadline, solved)
        if start is not None:
            gram, point = start
            out = _minimize(gram, point, tol=opts["tol"], max_iter=opts["max_iter"],
                            deadline=deadline, memory=opts["memory"], newton_gap=math.inf)
            solved.add(out)
            solved.face_steps += gram.face_steps
            if (out.status not in ("inaccurate", "error") or solved.iterations >= opts["max_iter"]
                    or time.perf_counter() >= deadline):
                solved.out, solved.variable = out, "gram"
                solved.null = gram.manifold.info(out.point.X).null
                return solved
            # The optimum has a lower rank than g - 1 (or the steps stalled for another
            # reason): the factor, which can lose rank, takes over from here.
            logger.info("native: in Q %s (%s); continuing in the factor", out.status,
                        out.message)
            if out.point.data is not None and gram.manifold.feasible(out.point.X):
                X = gram.manifold.factor(out.point.X)
    if X is None:
        X = _start(geometry, rank)
    problem = _Problem(cost, k, face=opts["face"])
    while True:
        out = _minimize(problem, X, tol=opts["tol"],
                        max_iter=max(opts["max_iter"] - solved.iterations, 1),
                        deadline=deadline, memory=opts["memory"],
                        newton_gap=opts["newton_gap"])
        solved.add(out)
        if out.status != "saddle":
            break
        if out.point.X.shape[1] >= g or solved.iterations >= opts["max_iter"]:
            out.status = "inaccurate"
            break
        logger.info("native: saddle at rank %d (lambda_min %.2e); escaping",
                    out.point.X.shape[1], out.cert.lam)
        X = _escape(problem, out.point, out.cert)
        solved.escapes += 1
    solved.out = out
    solved.face_steps += problem.face_steps
    return solved


def _coarse_start(cost, k: int, opts: dict, deadline: float, solved: _Solved):
    """A start on the rank ``g - 1`` manifold from a coarser model, or None.

    Neighbouring counts have nearly the same optimal cosines, so blocks of similar counts
    are merged (:func:`scconvex.solvers.corank.coarsen`) into a model of about ``g /``
    :data:`COARSE_RATIO` blocks, solved (recursively, to :data:`COARSE_TOL`), and its
    class Gram, which is feasible for the fine model as it is, read off at the fine blocks
    (:func:`scconvex.solvers.corank.prolong`). None when the coarse answer does not give
    a point of rank exactly ``g - 1``.
    """
    labels, sizes, counts = coarsen(cost, max(cost.g // COARSE_RATIO, 3))
    coarse = cost.coarsened(sizes, counts)
    # "auto": the coarse model goes to Q only when it is itself large (so the recursion
    # ends: every level is at most 1 / COARSE_RATIO of the one above it).
    sub = _solve(coarse, k, coarse.geometry, {**opts, "tol": max(opts["tol"], COARSE_TOL),
                                              "variable": "auto"}, deadline)
    solved.coarse += [int(coarse.g)] + sub.coarse
    solved.iterations += sub.iterations
    solved.evaluations += sub.evaluations
    p = sub.out.point
    if p.data is None or not np.all(np.isfinite(p.data[0])):
        return None
    Qc = p.data[0]
    if sub.variable == "gram":
        null = sub.null
    else:
        null = np.linalg.eigh(Qc)[1][:, 0]
    Q, n = prolong(coarse, Qc, null, labels, cost.geometry)
    gram = GramProblem(cost, k, np.float32 if cost.g > SMALL else np.float64)
    if gram.manifold.attach(Q, n).chol is None:
        return None
    return gram, gram.evaluate(Q)


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
    geometry = getattr(cost, "geometry", model.sizes)
    solved = _solve(cost, k, geometry, opts, deadline)
    out = solved.out
    total = solved.iterations
    p = out.point
    Q = p.data[0]
    if not np.all(np.isfinite(Q)):
        return RawResult("error", None, "non-finite iterate", total, {})
    B = cost.cosines(Q.copy())
    np.fill_diagonal(B, np.where(cost.sphere, 1.0, np.diag(B)))
    B = 0.5 * (B + B.T)
    cert = out.cert
    status, msg = out.status, out.message
    free = ~cost.sphere
    if np.any(np.diag(B)[free] > 1.0 + 1e-12):
        # a_p > 1 is infeasible (never optimal: the loss increases with a_p); say so.
        status, msg = "inaccurate", "a within-group cosine exceeds 1"
    elif g > SMALL:
        B = _inside(model, B, Q)
    info = {"rank": g - 1 if solved.variable == "gram" else int(p.X.shape[1]),
            "escapes": solved.escapes, "evaluations": solved.evaluations,
            "variable": solved.variable, "coarse": solved.coarse,
            "newton_iterations": solved.newton, "face_steps": solved.face_steps,
            "excess_gap": float(cert.gap) if cert else math.nan,
            "gap_floor": float(cert.floor) if cert else math.nan,
            "min_eig_slack": float(cert.lam) if cert else math.nan,
            "log_excess": float(p.F), "seconds": time.perf_counter() - t_start}
    if cert is not None:
        msg = f"{msg}; certified gap / excess loss {cert.gap:.2e}"
    return RawResult(status, B, msg, total, info)


register(Backend("native", levels=(CLASS, GROUP), options=DEFAULTS, lean=True,
                 requires=("numpy", "scipy"), run=run, relaxations=("elliptope", "dnn")))
