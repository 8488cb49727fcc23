"""Riemannian L-BFGS on the row manifolds of :mod:`scconvex.solvers.manifold`.

One optimizer for both solvers of the package (the pymanopt split: manifold, cost,
optimizer). A *problem* brings its manifold and cost; the optimizer knows neither the SC
loss nor when the answer is good enough, which a *monitor* decides:

* the native backend (:mod:`scconvex.solvers.native`) minimises the log of the excess loss
  over a factor with sphere and free rows, and stops on its duality-gap certificate;
* the non-convex solver (:mod:`scconvex.features.nonconvex`) minimises the excess loss over a
  product of spheres, and stops on the Riemannian gradient norm.

The method: L-BFGS with a row-wise diagonal preconditioner (when the problem has one), a
two-loop recursion in float64 or (for large, well-scaled costs) float32, curvature pairs
kept in the ambient space without transport (cautious update), and a weak Wolfe line
search with bracketing that falls back on the slope alone (the "approximate Wolfe" test of
Hager and Zhang) once differences of the cost
are rounding noise, so that the gradient can be driven far below ``sqrt(eps)``.

References
----------
J. Nocedal and S. J. Wright, "Numerical Optimization", 2nd ed., Springer (2006), ch. 7.
W. Huang, P.-A. Absil and K. A. Gallivan, "A Riemannian BFGS method without differentiated
retraction for nonconvex optimization problems", SIAM J. Optim. 28 (2018).
W. W. Hager and H. Zhang, "A new conjugate gradient method with guaranteed descent and an
efficient line search", SIAM J. Optim. 16 (2005).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.linalg import get_blas_funcs
from scipy.linalg.blas import daxpy, ddot, saxpy, sdot

logger = logging.getLogger(__name__)

_EPS = np.finfo(float).eps


@dataclass
class Point:
    """A point with its cost and Riemannian gradient.

    Attributes
    ----------
    X : ndarray
        The point.
    F : float
        Cost at ``X``.
    grad : ndarray
        Riemannian gradient at ``X`` (tangent, shape of ``X``).
    data : object
        Whatever else the problem computed there (the native backend keeps ``Q`` and
        the gradient ``C`` of its cost in ``Q`` for the certificate).
    """

    X: np.ndarray
    F: float
    grad: np.ndarray
    data: Any = None


class Problem(Protocol):
    """What :func:`lbfgs` needs from a problem: a manifold, the cost, a preconditioner."""

    manifold: Any

    def evaluate(self, X: np.ndarray) -> Point:
        """Cost and Riemannian gradient at ``X``."""

    def precondition(self, point: Point) -> np.ndarray | None:
        """Row weights ``h`` of a diagonal Hessian model (divide row ``p`` by ``h_p``),
        or None for none."""


@dataclass
class Outcome:
    """How :func:`lbfgs` ended.

    ``status`` is ``"stopped"`` (the monitor said so; ``message`` is its message),
    ``"line_search"`` (repeated line-search failures: the cost is at its rounding floor
    along every direction tried), ``"time_limit"``, ``"iteration_limit"`` or
    ``"non_finite"`` (the start is not finite).
    """

    point: Point
    iterations: int
    evaluations: int
    status: str
    message: str
    verdict: Any = None


Monitor = Callable[[int, Point, int], Any]
"""``monitor(iteration, point, failures)``: None to go on, anything else to stop (it is
returned as :attr:`Outcome.verdict`). ``failures`` counts consecutive failed line searches."""


class _Counted:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.count = 0

    def __call__(self, X: np.ndarray) -> Point:
        self.count += 1
        return self.problem.evaluate(X)


def _halt(monitor: Monitor, it: int, p: Point, fails: int, evaluations: int,
          max_failures: int, deadline: float) -> Outcome | None:
    """The stopping tests before each iteration, shared by both methods."""
    verdict = monitor(it, p, fails)
    if verdict is not None:
        return Outcome(p, it, evaluations, "stopped", "", verdict)
    if fails >= max_failures:
        return Outcome(p, it, evaluations, "line_search",
                       "the line search failed" + (f" {fails} times in a row" if fails > 1
                                                   else " along every direction"))
    if time.perf_counter() > deadline:
        return Outcome(p, it, evaluations, "time_limit", "time limit reached")
    return None


def _finite(p: Point) -> bool:
    return math.isfinite(p.F) and bool(np.all(np.isfinite(p.grad)))


def _weights(problem: Problem, p: Point) -> np.ndarray:
    """The preconditioner's weights, shaped to broadcast against ``p.X``."""
    h = problem.precondition(p)
    if h is None:
        return np.ones((p.X.shape[0], 1))
    return h[:, None] if h.ndim == 1 else h


def lbfgs(problem: Problem, X0: np.ndarray, *, monitor: Monitor, max_iter: int,
          memory: int = 5, deadline: float = math.inf, max_step: float = math.inf,
          f_noise: float = 0.0, max_failures: int = 4,
          pair_dtype: type = np.float64) -> Outcome:
    """Preconditioned Riemannian L-BFGS with a weak Wolfe line search.

    Parameters
    ----------
    problem : Problem
        Manifold (``proj``, ``retract_scaled``), cost and optional preconditioner.
    X0 : ndarray or Point
        Starting point on the manifold, or one already evaluated (saves an evaluation;
        manifolds that remember their points by identity need it).
    monitor : callable
        Called before every iteration; decides when to stop (see :data:`Monitor`).
    max_iter : int
        Iteration cap.
    memory : int
        Number of curvature pairs.
    deadline : float
        ``time.perf_counter()`` value after which the run stops.
    max_step : float
        Largest row-wise length of a first trial step (the sphere retraction saturates
        beyond about one radian).
    f_noise : float
        Absolute rounding error of the cost; below it the line search judges steps by the
        slope alone.
    max_failures : int
        Consecutive failed line searches (each followed by a reset to the preconditioned
        gradient) before giving up.
    pair_dtype : numpy float type
        Precision of the stored pairs and of the two-loop recursion. ``np.float32``
        halves the memory traffic of large problems, but only for a well-scaled cost:
        squared gradients below about 1e-38 underflow.

    Returns
    -------
    Outcome
    """
    man = problem.manifold
    evaluate = _Counted(problem)
    p = X0 if isinstance(X0, Point) else evaluate(np.array(X0, dtype=float))
    if not _finite(p):
        return Outcome(p, 0, evaluate.count, "non_finite", "non-finite cost at the start")
    pairs: deque = deque(maxlen=memory)
    step_scale = None
    fails = 0
    for it in range(max_iter):
        halt = _halt(monitor, it, p, fails, evaluate.count, max_failures, deadline)
        if halt is not None:
            return halt
        h = _weights(problem, p)
        if pair_dtype == np.float32 and not _fits_float32(p.grad, h):
            # An extreme scale (e.g. tau near 1e100) would overflow single precision: the
            # rest of this run keeps its pairs in double precision.
            pair_dtype = np.float64
            pairs.clear()
        d = man.proj(p.X, _two_loop(p.grad, pairs, h, pair_dtype), inplace=True)
        slope = float(np.vdot(p.grad, d))
        if not slope < 0:
            pairs.clear()
            d = man.proj(p.X, p.grad / -h, inplace=True)
            slope = float(np.vdot(p.grad, d))
        dmax = float(np.max(np.linalg.norm(d, axis=1))) + 1e-300
        if pairs:
            t0 = 1.0
        else:
            # First step (or after a reset): move rows by about 1e-2 at most.
            t0 = min(1.0, 1e-2 / dmax) if step_scale is None else step_scale
        t0 = min(t0, max_step / dmax)
        ok, t, p_new = _wolfe(evaluate, man, p, d, slope, t0, f_noise)
        if not ok:
            fails += 1
            pairs.clear()
            continue
        fails = 0
        step_scale = t
        sv = d.astype(pair_dtype).ravel()
        sv *= pair_dtype(t)
        yv = np.empty(d.size, dtype=pair_dtype)
        np.subtract(p_new.grad.ravel(), p.grad.ravel(), out=yv, casting="same_kind")
        sy = float(np.dot(sv, yv))
        if sy > 1e-6 * float(np.linalg.norm(sv) * np.linalg.norm(yv)):
            pairs.append((sv, yv, 1.0 / sy))
        p = p_new
    return _halt(monitor, max_iter, p, fails, evaluate.count, math.inf, math.inf) or Outcome(
        p, max_iter, evaluate.count, "iteration_limit", "iteration limit reached")


def _fits_float32(grad: np.ndarray, h: np.ndarray) -> bool:
    """Whether the gradient, the weights and their ratio stay well inside float32's range."""
    big = 1e30
    hmin, hmax = float(np.min(h)), float(np.max(h))
    gmax = float(np.max(np.abs(grad)))
    return (0 < hmin and hmax < big and 1.0 / hmin < big and gmax < big
            and gmax / hmin < big)


def _two_loop(g: np.ndarray, pairs, h: np.ndarray, dtype: type) -> np.ndarray:
    """L-BFGS direction ``-H g`` with initial matrix ``gamma Diag(1 / h)`` on rows.

    Vectors are flat arrays of ``dtype`` with in-place BLAS updates: at class level with
    k = 1000 a vector has 10^6 entries, the recursion is bound by memory traffic, and a
    search direction of a well-scaled cost needs no more than single precision (the
    gradient and the line search stay in double precision).
    """
    dot, axpy = (sdot, saxpy) if dtype == np.float32 else (ddot, daxpy)
    shape = g.shape
    q = g.astype(dtype).ravel()
    alphas = []
    for sv, yv, rho in reversed(pairs):
        a = rho * dot(sv, q)
        alphas.append(a)
        q = axpy(yv, q, a=-a)
    inv_h = (1.0 / h).astype(dtype)
    if pairs:
        sv, yv, _ = pairs[-1]
        y2 = yv.reshape(shape)
        gamma = dot(sv, yv) / float(np.sum(y2 * y2 * inv_h))
    else:
        gamma = 1.0
    q.reshape(shape)[...] *= gamma * inv_h
    for (sv, yv, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * dot(yv, q)
        q = axpy(sv, q, a=a - b)
    return -q.reshape(shape).astype(float)


def _wolfe(evaluate, man, p: Point, d: np.ndarray, slope: float, t0: float, f_noise: float,
           c1: float = 1e-4, c2: float = 0.9, max_eval: int = 25):
    """Weak Wolfe line search along ``t -> retract(X, t d)`` with bisection/secant zoom.

    Sufficient decrease is the Armijo test or, when the cost cannot resolve the decrease,
    the approximate Wolfe test ``phi'(t) <= (2 c1 - 1) phi'(0)`` on the slope alone.
    Returns ``(ok, t, point)``.
    """
    noise = max(f_noise, 4.0 * _EPS * (abs(p.F) + 1.0))
    lo, hi = 0.0, math.inf
    dlo = dhi = slope
    t = t0
    for _ in range(max_eval):
        Xt, scale = man.retract_scaled(p.X, t * d)
        pt = evaluate(Xt)
        if not math.isfinite(pt.F):
            hi = t
            t = 0.5 * (lo + hi)
            continue
        dphi = man.slope(pt.grad, d, scale)
        armijo = pt.F <= p.F + c1 * t * slope
        approx = pt.F <= p.F + noise and dphi <= (2 * c1 - 1) * slope
        if not (armijo or approx):
            hi, dhi = t, dphi
        elif dphi < c2 * slope:
            lo, dlo = t, dphi
        else:
            return True, t, pt
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
    return False, t, None


def newton_cg(problem, X0: np.ndarray | Point, *, monitor: Monitor, max_iter: int,
              deadline: float = math.inf, max_cg: int = 50, f_noise: float = 0.0,
              hess_dtype: type = np.float64,
              enough: Callable[[Point], float] | None = None) -> Outcome:
    """Riemannian truncated Newton: preconditioned CG on the Newton system, line search.

    Each iteration solves ``Hess F [d] = -grad F`` approximately by conjugate gradients
    preconditioned by the problem's weights, stopped at relative residual
    ``min(0.1, sqrt(|grad| / |grad_0|))`` (superlinear local convergence), after
    ``max_cg`` steps or at the first direction of non-positive curvature (then the last
    iterate is used, or the preconditioned gradient at the first step). The step is
    found by the weak Wolfe search of :func:`lbfgs`, starting at the full step.

    ``problem`` needs ``hessian(point, dtype)`` (a function applying the Riemannian
    Hessian at ``point`` to tangent vectors, computed in ``hess_dtype``) besides the
    :class:`Problem` interface. It may also offer ``newton_direction(point, eta, max_cg,
    deadline)``, a Newton direction computed its own way (the native backend solves on a
    face of the PSD cone) or None; that direction is tried first. When the line search
    fails along a direction, the next one is tried: the manifold Newton direction, then
    the preconditioned gradient (unless the problem sets ``fallback_directions`` False:
    then the run ends at the first failure). When all three fail the run ends (a retry
    would repeat the same steps). ``enough(point)``, when given, is a relative residual that already
    suffices at ``point`` (the native backend derives it from how far its certified gap
    is from the target): the forcing term is never below it. ``X0`` may be a
    :class:`Point` already evaluated (the end of an L-BFGS run), which saves one
    evaluation. Returns an :class:`Outcome` like :func:`lbfgs`.
    """
    man = problem.manifold
    evaluate = _Counted(problem)
    p = X0 if isinstance(X0, Point) else evaluate(np.array(X0, dtype=float))
    if not _finite(p):
        return Outcome(p, 0, evaluate.count, "non_finite", "non-finite cost at the start")
    fails = 0
    g0 = float(np.linalg.norm(p.grad))
    own = getattr(problem, "newton_direction", None)
    for it in range(max_iter):
        halt = _halt(monitor, it, p, fails, evaluate.count, 1, deadline)
        if halt is not None:
            return halt
        gnorm = float(np.linalg.norm(p.grad))
        eta = min(0.1, math.sqrt(gnorm / g0)) if g0 > 0 else 0.1
        if enough is not None:
            eta = min(0.1, max(eta, enough(p)))

        def directions(p=p, eta=eta, gnorm=gnorm):
            if own is not None:
                d = own(p, eta, max_cg, deadline)
                if d is not None:
                    yield man.proj(p.X, d, inplace=True)
            if not getattr(problem, "fallback_directions", True):
                return
            # The preconditioner only when the problem's own direction failed.
            inv_h = 1.0 / _weights(problem, p)
            yield _truncated_cg(problem, p, inv_h, eta * gnorm, max_cg, deadline, hess_dtype)
            yield man.proj(p.X, p.grad * -inv_h, inplace=True)

        fails = 1
        for which, d in enumerate(directions()):
            slope = float(np.vdot(p.grad, d))
            if not slope < 0:
                logger.debug("newton: direction %d is not a descent direction (slope %.2e)",
                             which, slope)
                continue
            ok, t, p_new = _wolfe(evaluate, man, p, d, slope, 1.0, f_noise)
            if ok:
                p, fails = p_new, 0
                break
            logger.debug("newton: line search failed along direction %d", which)
    return _halt(monitor, max_iter, p, fails, evaluate.count, math.inf, math.inf) or Outcome(
        p, max_iter, evaluate.count, "iteration_limit", "iteration limit reached")


def _truncated_cg(problem, p: Point, inv_h: np.ndarray, tol: float, max_cg: int,
                  deadline: float, hess_dtype: type) -> np.ndarray:
    """Preconditioned CG for ``Hess [s] = -grad`` on the tangent space at ``p.X``."""
    man = problem.manifold
    return truncated_cg(problem.hessian(p, hess_dtype), -p.grad,
                        lambda r: man.proj(p.X, r * inv_h, inplace=True), tol, max_cg,
                        deadline)


def truncated_cg(apply: Callable[[np.ndarray], np.ndarray], b: np.ndarray,
                 precondition: Callable[[np.ndarray], np.ndarray], tol: float, max_cg: int,
                 deadline: float = math.inf, info: dict | None = None) -> np.ndarray:
    """Preconditioned conjugate gradients for ``apply(x) = b``, truncated for Newton steps.

    ``apply`` is self-adjoint in the Frobenius inner product on a subspace that holds
    ``b``, and ``precondition`` is a symmetric positive definite map into that subspace
    (it returns a new array and leaves its argument alone). The iteration stops when the
    residual norm is at most ``tol``, after ``max_cg`` products, past ``deadline``, or at
    the first direction of non-positive curvature: then the iterate so far is returned, or
    that direction itself at the first step (it is still a descent direction for ``-b``).
    ``info``, when given, receives the number of products (``"products"``), the last
    residual norm (``"residual"``) and whether the run ended at a direction of
    non-positive curvature (``"negative_curvature"``). ``b`` and
    what ``apply`` and ``precondition`` return are C-contiguous arrays of one float type
    (updated in place with BLAS).
    """
    # In-place BLAS level-1 on flat views: at g = 3000 a vector is a 9e6-entry matrix,
    # and numpy's "x += alpha * d" costs a temporary and three passes where axpy costs one.
    axpy, dot, nrm2 = get_blas_funcs(("axpy", "dot", "nrm2"), (b,))
    x = np.zeros_like(b)
    r = b.copy()
    xv, rv = x.ravel(), r.ravel()
    z = precondition(r)
    d = np.array(z, copy=True)
    rz = float(dot(rv, z.ravel()))
    for j in range(max_cg):
        if info is not None:
            info["products"] = j + 1
        Hd = apply(d)
        dv = d.ravel()
        curv = float(dot(dv, Hd.ravel()))
        if not curv > 0:
            if info is not None:
                info["negative_curvature"] = True
            return d if j == 0 else x
        alpha = rz / curv
        axpy(dv, xv, a=alpha)
        axpy(Hd.ravel(), rv, a=-alpha)
        res = float(nrm2(rv))
        if info is not None:
            info["residual"] = res
        if res <= tol or time.perf_counter() > deadline:
            break
        z = precondition(r)
        zv = z.ravel()
        rz_new = float(dot(rv, zv))
        # d <- z + (rz_new / rz) d, in the new z's memory.
        axpy(dv, zv, a=rz_new / rz)
        d = z
        rz = rz_new
    return x
