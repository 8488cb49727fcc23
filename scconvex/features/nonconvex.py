"""The non-convex problem: minimise the SC loss over unit-norm features in dimension ``d``.

Three separate pieces, as in pymanopt:

* **costs** (:func:`class_cost`, :func:`sample_cost`): the loss and its Euclidean
  gradient, at class level on ``k`` class means ``U`` (MATH.md section 4, block form in log
  space, so the geometry stays determined at small ``tau``) or at sample level on ``n``
  features ``H`` (MATH.md section 2);
* the **manifold** (:class:`scconvex.solvers.manifold.Spheres`);
* the **optimizer** (:func:`riemannian_lbfgs`): the Riemannian L-BFGS of
  :mod:`scconvex.solvers.optim`, shared with the native backend, stopped on the Riemannian
  gradient norm.

:func:`minimize_spheres` runs the optimizer from several seeded random starts and returns a
:class:`NonconvexResult`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..certificates.certify import dense_rounding
from ..errors import InvalidInputError
from ..levels import CLASS, SAMPLE
from ..losses import get_loss, relaxation_of
from ..problem.spec import ProblemSpec
from ..solvers.manifold import Spheres
from ..solvers.optim import Point, lbfgs
from ..threads import blas_threads, choose_threads

logger = logging.getLogger(__name__)

NONCONVEX_LEVELS = (CLASS.name, SAMPLE.name)
"""Levels of the non-convex problem: ``k`` class means or ``n`` sample features."""

DEFAULT_TOL = 1e-9
"""Default relative gradient tolerance of :func:`minimize_spheres` (see its Notes)."""

DEFAULT_MAX_ITER = 5000
"""Default iteration cap of one optimizer run."""


# ---------------------------------------------------------------------- costs
@dataclass(frozen=True)
class Cost:
    """A smooth cost on a product of spheres.

    Attributes
    ----------
    fun : callable
        ``fun(X) -> (f, egrad)``: the value minimised (the *excess* loss
        ``L - sum_c n_c log(n_c - 1)``, MATH.md section 6) and its Euclidean gradient,
        shape of ``X``.
    loss : callable
        ``loss(X) -> L``: the full SC loss (the value the relaxation reports).
    offset : float
        ``L - f``, the constant ``sum_c n_c log(n_c - 1)``.
    shape : tuple of int
        Shape ``(rows, d)`` of a point.
    noise : float
        Estimated absolute rounding error of ``fun``'s value (0 when it is accurate to a
        few ulps of itself).
    """

    fun: Callable[[np.ndarray], tuple[float, np.ndarray]]
    loss: Callable[[np.ndarray], float]
    offset: float
    shape: tuple[int, int]
    noise: float = 0.0


def _check_spec(spec: object) -> ProblemSpec:
    if not isinstance(spec, ProblemSpec):
        raise InvalidInputError(f"spec must be a ProblemSpec, got {type(spec).__name__}")
    return spec


def _check_d(d: object) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or int(d) < 1:
        raise InvalidInputError(f"the dimension d must be an integer >= 1, got {d!r}")
    return int(d)


def _loss_of(spec: ProblemSpec):
    """The spec's loss object; the sphere manifold cannot express other relaxations."""
    if spec.batches is not None:
        # The batch-wise loss lives at sample level only and has no sphere cost here.
        raise InvalidInputError("the non-convex solver does not support the batch-wise "
                                "loss; solve it with scconvex.solve at sample level")
    if not relaxation_of(spec).spheres:
        raise InvalidInputError(
            f"the non-convex solver works on unit spheres, not the {spec.relaxation!r} "
            "relaxation; for 'dnn' the result's nonnegative_factor says whether the "
            "relaxed optimum has non-negative features")
    return get_loss(spec.loss)


def class_cost(spec: ProblemSpec, d: int) -> Cost:
    """Class-level cost on class means ``U`` of shape ``(k, d)`` with unit rows.

    Parameters
    ----------
    spec : ProblemSpec
    d : int
        Feature dimension.

    Returns
    -------
    Cost
        ``fun(U)`` returns the excess class loss of ``M = U U^T`` and its gradient.

    Notes
    -----
    With ``D = block_grad(...)`` the row-wise derivative ``D[p, q] = dL/dM[p, q]`` (one
    class per block), ``dM = dU U^T + U dU^T`` gives
    ``dL = sum_pq D_pq (dU_p . U_q + U_p . dU_q) = <(D + D^T) U, dU>``, so the Euclidean
    gradient is ``(D + D^T) U``. The diagonal of ``M`` is fixed to 1 on the manifold, so
    ``D``'s diagonal is zeroed (it would only add a normal component anyway).
    """
    spec = _check_spec(spec)
    d = _check_d(d)
    counts = np.asarray(spec.counts)
    sizes = np.ones(spec.k, dtype=int)
    tau = spec.tau
    offset = spec.constant
    block = _loss_of(spec)

    def fun(U: np.ndarray) -> tuple[float, np.ndarray]:
        terms = block.block_terms(U @ U.T, sizes, counts, tau)
        D = block.block_grad(terms, sizes, counts, tau)
        np.fill_diagonal(D, 0.0)
        return terms.excess, (D + D.T) @ U

    def loss(U: np.ndarray) -> float:
        return block.block_terms(U @ U.T, sizes, counts, tau).value

    return Cost(fun, loss, offset, (spec.k, d))


def sample_cost(spec: ProblemSpec, d: int) -> Cost:
    """Sample-level cost on features ``H`` of shape ``(n, d)`` with unit rows.

    Samples are ordered as :attr:`ProblemSpec.labels` (class by class). The value and
    gradient are those of ``H -> L(H H^T)`` for the spec's loss. For the SC loss
    (MATH.md section 2) they are computed in slabs of rows, so that memory stays
    ``O(n d)`` and every ``n x n`` quantity is touched a few times only (see Notes).

    Notes
    -----
    With unit rows ``G_ii = 1``, so the positive part of anchor ``i`` in class ``c`` is
    ``(h_i . S_c - 1) / ((n_c - 1) tau)``, ``S_c`` the sum of the class's features: over
    all anchors it is ``sum_c (|S_c|^2 - n_c) / ((n_c - 1) tau)``, with gradient
    ``2 S_c / ((n_c - 1) tau)`` on each row of class ``c``. Only the log-sum-exp part
    needs all pairs: row ``i`` of the softmax ``P`` over ``l != i`` gives the gradient
    ``(P H + P^T H) / tau`` (anchors without positives contribute nothing: their rows of
    ``P`` are zero). Time ``O(n^2 d)``, dominated by one ``exp`` per pair.
    """
    spec = _check_spec(spec)
    d = _check_d(d)
    labels = spec.labels
    tau = spec.tau
    offset = spec.constant
    sample = _loss_of(spec)

    def value_grad(H: np.ndarray) -> tuple[float, np.ndarray]:
        return sample.sphere_value_grad(H, labels, tau)

    def fun(H: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_grad(H)
        return value - offset, grad

    def loss(H: np.ndarray) -> float:
        return value_grad(H)[0]

    # The excess is a small difference of two sums of n terms of size up to 1/tau + log n.
    return Cost(fun, loss, offset, (spec.n, d), dense_rounding(spec.n, tau))


# ---------------------------------------------------------------------- optimizer
@dataclass(frozen=True)
class OptimizeOutcome:
    """Result of one optimizer run.

    Attributes
    ----------
    x : ndarray
        Final point (unit rows).
    fun : float
        Cost at ``x``.
    grad_norm : float
        Riemannian gradient norm at ``x``.
    iterations : int
        Quasi-Newton iterations taken.
    evaluations : int
        Cost evaluations (including line-search trials).
    converged : bool
        True when ``grad_norm <= gtol`` (the gradient test is the only success criterion)
        and ``gtol`` is resolved in float64 (see ``resolution`` of
        :func:`riemannian_lbfgs`).
    message : str
        Why the run stopped.
    """

    x: np.ndarray
    fun: float
    grad_norm: float
    iterations: int
    evaluations: int
    converged: bool
    message: str


class _FunProblem:
    """A cost ``fun(X) -> (f, egrad)`` on a manifold, as :func:`scconvex.solvers.optim.lbfgs` wants
    it."""

    def __init__(self, fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
                 manifold: Spheres) -> None:
        self.fun = fun
        self.manifold = manifold

    def evaluate(self, X: np.ndarray) -> Point:
        f, egrad = self.fun(X)
        return Point(X, float(f), self.manifold.proj(X, np.asarray(egrad, dtype=float)))

    def precondition(self, point: Point) -> None:
        return None


GRADIENT_RESOLUTION = math.sqrt(np.finfo(float).tiny / np.finfo(float).eps)
"""Smallest gradient threshold the gradient test can resolve (about 1e-146).

The excess loss and its gradient are sums of exponentials, and the optimizer forms
squares and inner products of gradients (its curvature pairs): for gradients below
``sqrt(tiny / eps)`` those are subnormal or 0 in float64, and terms below ``tiny`` are lost
altogether. A test passed against a smaller threshold, down to a threshold of exactly 0
where the excess itself underflowed (SC at ``tau = 1e-4`` from random starts), proves
nothing, and the run stops there."""

TIME_LIMIT_MESSAGE = "time limit reached during the run"
"""Stopping reason of a run cut by the deadline."""

_MESSAGES = {"converged": "gradient norm below tolerance",
             "underflow": "gradient below float resolution: not evidence of a stationary "
                          "point (the excess loss underflows at this tau; class and group "
                          "level solves work in log space)",
             "non_finite": "non-finite cost or gradient",
             "line_search": "line search failed (cost at its rounding floor)",
             "iteration_limit": "maximum number of iterations reached",
             "time_limit": TIME_LIMIT_MESSAGE}


def riemannian_lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
                     x0: np.ndarray, manifold: Spheres, *,
                     gtol: float | Callable[[float], float],
                     max_iter: int = DEFAULT_MAX_ITER, memory: int = 10,
                     max_step: float = 1.0, f_noise: float = 0.0,
                     resolution: float = 0.0,
                     deadline: float = math.inf) -> OptimizeOutcome:
    """Riemannian L-BFGS (:func:`scconvex.solvers.optim.lbfgs`) stopped on the gradient norm.

    Parameters
    ----------
    fun : callable
        ``fun(X) -> (f, egrad)``, cost and Euclidean gradient.
    x0 : ndarray
        Starting point on ``manifold``.
    manifold : Spheres
        Provides ``proj`` and ``retract_scaled``.
    gtol : float or callable
        Stop when the Riemannian gradient norm is ``<= gtol`` (or ``<= gtol(f)`` for a
        callable, which lets the threshold follow the current cost).
    max_iter : int
        Iteration cap.
    memory : int
        Number of stored curvature pairs.
    max_step : float
        Largest row-wise length of a first trial step (radians, before retraction).
    f_noise : float
        Absolute rounding error of ``fun``'s value (e.g. when it is a small difference of
        large sums). Below it the line search trusts the gradient instead.
    resolution : float
        Smallest threshold the gradient test can resolve (:data:`GRADIENT_RESOLUTION`
        for a cost made of exponentials that underflow). A test passed against a smaller
        threshold is not convergence, and a non-negative cost whose threshold falls below
        it stops the run; both with the message "gradient below float resolution".
    deadline : float
        A ``time.perf_counter()`` value checked before every iteration: past it the run
        stops with :data:`TIME_LIMIT_MESSAGE` (not converged).

    Returns
    -------
    OptimizeOutcome
        ``converged`` is True only when the gradient test was met against a threshold of
        at least ``resolution``.

    Notes
    -----
    The optimizer is shared with the native backend: the same two-loop recursion,
    cautious curvature pairs and weak Wolfe line search with the approximate Wolfe test of
    Hager and Zhang (2005) where differences of ``f`` are rounding noise. A failed line
    search resets the memory to the gradient direction; a second failure in a row stops
    the run.
    """
    tol_of = gtol if callable(gtol) else (lambda _f, _g=float(gtol): _g)

    def monitor(_it: int, p: Point, _fails: int):
        gnorm = _norm(p.grad)
        if not (math.isfinite(p.F) and math.isfinite(gnorm)):
            return "non_finite"
        threshold = tol_of(p.F)
        if gnorm <= threshold:
            return "converged" if threshold >= resolution else "underflow"
        if p.F >= 0 and threshold < resolution:
            # The cost itself underflowed: the test can no longer be resolved. (A negative
            # excess is a cancelling difference below its rounding, at sample level; the
            # line search handles that.)
            return "underflow"
        return None

    out = lbfgs(_FunProblem(fun, manifold), x0, monitor=monitor, max_iter=int(max_iter),
                memory=memory, max_step=max_step, f_noise=f_noise, max_failures=2,
                deadline=deadline)
    key = out.verdict if out.verdict is not None else out.status
    p = out.point
    return OptimizeOutcome(p.X, float(p.F), _norm(p.grad), out.iterations,
                           out.evaluations, key == "converged",
                           _MESSAGES.get(key, out.message))


def _norm(V: np.ndarray) -> float:
    """Frobenius norm without underflow: the squares of entries below 1e-154 are 0 in
    float64, and an unscaled norm of such a gradient would read as exactly 0."""
    big = float(np.max(np.abs(V), initial=0.0))
    if big == 0.0 or not math.isfinite(big):
        return big
    return big * float(np.linalg.norm(V / big))


# ---------------------------------------------------------------------- restarts
@dataclass(frozen=True)
class NonconvexResult:
    """Best of several non-convex runs on the product of spheres.

    Attributes
    ----------
    spec : ProblemSpec
    level : {"class", "sample"}
    d : int
        Feature dimension.
    features : ndarray, shape (k, d) or (n, d)
        Best point found (class means at class level; sample features, ordered as
        ``spec.labels``, at sample level), unit rows.
    loss : float
        Full SC loss at ``features``.
    excess : float
        ``loss - sum_c n_c log(n_c - 1)``, computed without cancellation at class level.
    best_index : int
        Index of the best restart.
    losses, excesses : tuple of float
        Per-restart final loss and excess loss.
    iterations : tuple of int
        Per-restart optimizer iterations.
    grad_norms : tuple of float
        Per-restart final Riemannian gradient norm of the loss.
    gtols : tuple of float
        Per-restart gradient threshold in force at the final point.
    converged : tuple of bool
        Per-restart: the gradient test was met against a threshold float64 resolves
        (:data:`GRADIENT_RESOLUTION`); a run whose excess underflowed is not converged.
    messages : tuple of str
        Per-restart stopping reason.
    seconds : tuple of float
        Per-restart wall-clock time.
    total_seconds : float
        Wall-clock time of all restarts.
    timed_out : bool
        The deadline cut the first run, which is then the only one (a run cut later is
        dropped: the runs returned are complete).
    """

    spec: ProblemSpec
    level: str
    d: int
    features: np.ndarray
    loss: float
    excess: float
    best_index: int
    losses: tuple[float, ...]
    excesses: tuple[float, ...]
    iterations: tuple[int, ...]
    grad_norms: tuple[float, ...]
    gtols: tuple[float, ...]
    converged: tuple[bool, ...]
    messages: tuple[str, ...]
    seconds: tuple[float, ...]
    total_seconds: float
    timed_out: bool = False

    @property
    def restarts(self) -> int:
        """Number of runs."""
        return len(self.losses)

    @property
    def gram(self) -> np.ndarray:
        """Gram matrix ``F F^T`` of the best features."""
        return self.features @ self.features.T

    def to_dict(self) -> dict:
        """JSON-safe summary (features as nested lists)."""
        return {
            "counts": list(self.spec.counts), "tau": self.spec.tau, "level": self.level,
            "d": self.d, "loss": self.loss, "excess": self.excess,
            "best_index": self.best_index, "losses": list(self.losses),
            "excesses": list(self.excesses), "iterations": list(self.iterations),
            "grad_norms": list(self.grad_norms), "gtols": list(self.gtols),
            "converged": list(self.converged), "messages": list(self.messages),
            "seconds": list(self.seconds), "total_seconds": self.total_seconds,
            "features": self.features.tolist(),
        }


SeedLike = int | Sequence[int] | np.random.SeedSequence | None


def _seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    try:
        return np.random.SeedSequence(seed)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"seed must be a non-negative integer: {exc}") from None


def minimize_spheres(spec: ProblemSpec, d: int, *, level: str = "class", restarts: int = 10,
                     seed: SeedLike = 0, tol: float = DEFAULT_TOL,
                     max_iter: int = DEFAULT_MAX_ITER, x0: np.ndarray | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     deadline: float = math.inf,
                     threads: int | None = None) -> NonconvexResult:
    """Minimise the SC loss over unit-norm rows in dimension ``d`` from random starts.

    Parameters
    ----------
    spec : ProblemSpec
        Class counts and temperature.
    d : int
        Feature dimension, ``d >= 1``.
    level : {"class", "sample"}, default "class"
        ``"class"``: optimise ``k`` class means (every class collapsed to one point);
        ``"sample"``: optimise all ``n`` sample features.
    restarts : int, default 10
        Number of runs, ``>= 1``. Run ``i`` starts from a uniform random point drawn from
        the ``i``-th child of ``SeedSequence(seed)`` (or from ``x0`` when given, for
        ``i = 0``), so a run does not depend on how many others are made.
    seed : int, sequence of int or numpy.random.SeedSequence, default 0
        Root seed; ``None`` draws fresh entropy.
    tol : float, default 1e-9
        Relative gradient tolerance (see Notes).
    max_iter : int, default 5000
        Iteration cap per run.
    x0 : ndarray, optional
        Starting point for the first run (rows are normalised), e.g. a truncated factor
        of the relaxed optimum from :func:`scconvex.features.factor.factor`.
    progress : callable, optional
        Called as ``progress(i, restarts)`` after run ``i`` (1-based) finishes.
    deadline : float, optional
        A ``time.perf_counter()`` value after which no new run is started (the first run
        always is) and a running one stops: the result may hold fewer than ``restarts``
        runs. A run cut short is dropped unless it is the first, which is then returned
        alone with ``timed_out`` set.
    threads : int, optional
        BLAS threads for the runs (:func:`scconvex.threads.choose_threads`: one unless
        given; every loaded BLAS library is limited and restored afterwards).

    Returns
    -------
    NonconvexResult

    Raises
    ------
    InvalidInputError
        On a bad level, ``d < 1``, ``restarts < 1``, ``tol <= 0``, ``max_iter < 0`` or a
        bad ``x0``.

    Notes
    -----
    A run stops when the Riemannian gradient of the loss satisfies

        ||grad L(X)|| <= tol * E(X) / tau,     E = L - sum_c n_c log(n_c - 1) > 0,

    i.e. the gradient is measured against the natural scale of the excess loss ``E``
    (MATH.md section 6): near the optimum every gradient entry is a multiple of
    ``E / tau``, and the curvature of the flat directions is of order ``E / tau^2``,
    so the threshold fixes the *relative* accuracy of ``E`` (about
    ``tol^2 / 2``) independently of ``n`` and of how small ``tau`` makes ``E``.

    Examples
    --------
    >>> spec = ProblemSpec.from_counts([5, 5, 5], tau=0.5)
    >>> res = minimize_spheres(spec, 2, restarts=2, seed=1)
    >>> round(res.loss, 8)  # 15 log(4 + 10 exp(-3)), the simplex ETF
    22.55406155
    """
    spec = _check_spec(spec)
    d = _check_d(d)
    if level not in NONCONVEX_LEVELS:
        raise InvalidInputError(f"unknown level {level!r}; choose one of {NONCONVEX_LEVELS}")
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) \
            or restarts < 1:
        raise InvalidInputError(f"restarts must be an integer >= 1, got {restarts!r}")
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise InvalidInputError(f"tol must be a number, got {tol!r}") from None
    if not (math.isfinite(tol) and tol > 0):
        raise InvalidInputError(f"tol must be finite and > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
            or max_iter < 0:
        raise InvalidInputError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress must be callable")
    threads = choose_threads(threads)
    cost = _COSTS[level](spec, d)
    manifold = Spheres(*cost.shape)
    if x0 is not None:
        x0 = _check_start(x0, cost.shape)
    children = _seed_sequence(seed).spawn(int(restarts))
    scale = tol / spec.tau

    def gtol(f: float) -> float:
        return scale * max(f, 0.0)

    runs = []
    times = []
    start_all = time.perf_counter()
    with blas_threads(threads):
        for i, child in enumerate(children):
            if runs and time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            start = x0 if (i == 0 and x0 is not None) else \
                manifold.random_point(np.random.default_rng(child))
            out = riemannian_lbfgs(cost.fun, start, manifold, gtol=gtol,
                                   max_iter=int(max_iter), f_noise=cost.noise,
                                   resolution=GRADIENT_RESOLUTION, deadline=deadline)
            if out.message == TIME_LIMIT_MESSAGE and runs:
                break  # incomplete: the finished runs are the result
            times.append(time.perf_counter() - t0)
            runs.append(out)
            if out.message == TIME_LIMIT_MESSAGE:
                break
            logger.debug("restart %d/%d (d=%d, %s): f=%.6g |grad|=%.3g it=%d %s", i + 1,
                         restarts, d, level, out.fun, out.grad_norm, out.iterations,
                         out.message)
            if progress is not None:
                progress(i + 1, int(restarts))
        total = time.perf_counter() - start_all
        losses = [cost.loss(out.x) for out in runs]
    excesses = [out.fun for out in runs]
    best = int(np.argmin(excesses))
    return NonconvexResult(
        spec=spec, level=level, d=d, features=runs[best].x, loss=float(losses[best]),
        excess=float(excesses[best]), best_index=best,
        losses=tuple(float(v) for v in losses), excesses=tuple(float(v) for v in excesses),
        iterations=tuple(out.iterations for out in runs),
        grad_norms=tuple(out.grad_norm for out in runs),
        gtols=tuple(gtol(out.fun) for out in runs),
        converged=tuple(out.converged for out in runs),
        messages=tuple(out.message for out in runs),
        seconds=tuple(times), total_seconds=total,
        timed_out=runs[-1].message == TIME_LIMIT_MESSAGE)


def _check_start(x0, shape: tuple[int, int]) -> np.ndarray:
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != shape:
        raise InvalidInputError(f"x0 must have shape {shape}, got {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise InvalidInputError("x0 contains non-finite values")
    norms = np.linalg.norm(x0, axis=1)
    if np.any(norms == 0):
        raise InvalidInputError("x0 has a zero row")
    return x0 / norms[:, None]


_COSTS = {CLASS.name: class_cost, SAMPLE.name: sample_cost}
"""The cost of each level the non-convex solver works at (:data:`NONCONVEX_LEVELS`)."""
