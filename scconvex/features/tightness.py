"""Tightness report: does the non-convex problem in dimension ``d`` reach the relaxed optimum?

For each ``d`` the non-convex solver (:func:`scconvex.features.nonconvex.minimize_spheres`) is run
from several seeded random starts and its best loss is compared with the certified optimum
of the convex relaxation (:func:`scconvex.pipeline.solve.solve` at class level). The relaxation is
*tight* at ``d`` when some feature set in dimension ``d`` attains the relaxed optimum; the
landscape is benign there when *every* restart does.

Rules, the same as ``solve``'s (a dimension is judged against the *certified lower bound*
``LB`` of the relaxed optimum, and its excess ``E_LB = LB - sum n_c log(n_c - 1)``, computed
without cancellation from the certificate's excess-relative gap; a reference given without
a certificate, such as a closed form, is taken as exact):

* ``rel_gap = (best_loss - LB) / |LB|``, the gap relative to the loss;
* ``excess_gap = (best_excess - E_LB) / E_LB``, the gap relative to the excess loss (infinite
  when the relaxed certificate does not bound the excess away from 0). At small ``tau`` the
  loss is almost all constant and only this one says anything about the geometry;
* ``tight``: ``rel_gap <= rtol`` **and** ``excess_gap <= excess_rtol`` (defaults 1e-6 and
  1e-3, ``solve``'s ``gap_tol`` and ``excess_tol``); either gap can be slightly negative
  when the relaxed point is less accurate than the non-convex one;
* at sample level the excess of a non-convex point is a difference of two large sums,
  known only to ``excess_resolution``; ``tight`` must hold with the excess raised by that
  much, so an unresolved dimension is reported not tight rather than tight;
* ``reached``: the number of restarts that meet the same test;
* ``gram_distance``: ``||M_nc - M*||_F`` (absolute), ``M*`` the relaxed class Gram and
  ``M_nc`` the class Gram of the best non-convex point (at sample level, the mean of each
  off-diagonal class block of ``H H^T``, with unit diagonal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..certificates.certify import dense_rounding
from ..errors import InvalidInputError, SolveFailedError
from ..levels import CLASS, get_level
from ..losses import loss_of
from ..pipeline.solve import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL, solve
from ..problem.model import class_sums
from ..problem.spec import ProblemSpec
from ..resources import check_memory, nonconvex_bytes
from .factor import numerical_rank
from .nonconvex import DEFAULT_MAX_ITER, DEFAULT_TOL, NONCONVEX_LEVELS, minimize_spheres

DEFAULT_RTOL = DEFAULT_GAP_TOL
"""Tolerance of ``tight`` and ``reached`` on the gap relative to the loss."""

DEFAULT_EXCESS_RTOL = DEFAULT_EXCESS_TOL
"""Tolerance of ``tight`` and ``reached`` on the gap relative to the excess loss."""


@dataclass(frozen=True)
class TightnessRow:
    """Outcome of the restarts in one dimension ``d`` (see the module docstring).

    Attributes
    ----------
    d : int
    best_loss : float
        Smallest non-convex loss over the restarts.
    best_excess : float
        Its excess ``best_loss - sum n_c log(n_c - 1)``.
    rel_gap : float
        ``(best_loss - LB) / |LB|``, ``LB`` the certified lower bound of the relaxation.
    excess_gap : float
        ``(best_excess - E_LB) / E_LB``: the same gap measured on the geometry-dependent
        part of the loss, the one that decides at small ``tau``.
    tight : bool
        ``rel_gap <= rtol`` and ``excess_gap <= excess_rtol``.
    reached : int
        Restarts that meet both tolerances.
    restarts : int
    gram_distance : float
        ``||M_nc - M*||_F`` (absolute).
    within_class_spread : float or None
        Sample level: largest distance between two features of one class at the best
        point (0 means within-class collapse). None at class level (collapsed by
        construction).
    converged : int
        Restarts that met the gradient tolerance.
    max_iterations : int
        Largest iteration count over the restarts.
    max_grad_norm : float
        Largest final Riemannian gradient norm over the restarts.
    seconds : float
        Wall-clock time of the restarts in this dimension.
    features : ndarray or None
        The best restart's features: class means, shape ``(k, d)``, at class level;
        sample features ordered as ``spec.labels``, shape ``(n, d)``, at sample level.
        Not part of :meth:`to_dict` (it can be large); the sweep stores it with a tight
        row so that ``atlas verify`` can re-derive the claim.
    """

    d: int
    best_loss: float
    best_excess: float
    rel_gap: float
    excess_gap: float
    tight: bool
    reached: int
    restarts: int
    gram_distance: float
    within_class_spread: float | None
    converged: int
    max_iterations: int
    max_grad_norm: float
    seconds: float
    features: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "d": self.d, "best_loss": _num(self.best_loss), "best_excess": _num(self.best_excess),
            "rel_gap": _num(self.rel_gap), "excess_gap": _num(self.excess_gap),
            "tight": self.tight, "reached": self.reached, "restarts": self.restarts,
            "gram_distance": _num(self.gram_distance),
            "within_class_spread": (None if self.within_class_spread is None
                                    else _num(self.within_class_spread)),
            "converged": self.converged, "max_iterations": self.max_iterations,
            "max_grad_norm": _num(self.max_grad_norm), "seconds": _num(self.seconds),
        }


@dataclass(frozen=True)
class TightnessReport:
    """Tightness of the relaxation across dimensions.

    Attributes
    ----------
    spec : ProblemSpec
    level : {"class", "sample"}
        Level of the non-convex runs.
    relaxed_loss : float
        ``L*``, the certified relaxed optimum (class level).
    relaxed_excess : float
        ``E* = L* - sum n_c log(n_c - 1)``.
    lower_bound : float
        ``LB``, the certified lower bound the rows are judged against.
    excess_lower_bound : float
        ``E_LB = LB - sum n_c log(n_c - 1)``, without cancellation.
    rank : int
        Numerical rank of the relaxed class Gram (as reported by the solve).
    relaxed_status : str
        Status of the relaxed solve (``"optimal"`` when certified).
    relaxed_gram : ndarray, shape (k, k)
    rows : tuple of TightnessRow
        One per requested dimension, in the order given.
    rtol, excess_rtol : float
        Tolerances on the loss-relative and the excess-relative gap.
    excess_resolution : float
        Absolute rounding bound of a non-convex excess (0 at class level, where it is
        computed without cancellation); ``tight`` holds only if it holds with the excess
        raised by this much.
    seed : int
    restarts : int
    seconds : float
        Wall-clock time including the relaxed solve.
    relaxed_seconds : float
        Time of the relaxed solve alone.
    """

    spec: ProblemSpec
    level: str
    relaxed_loss: float
    relaxed_excess: float
    rank: int
    relaxed_status: str
    relaxed_gram: np.ndarray
    rows: tuple[TightnessRow, ...]
    rtol: float
    seed: int
    restarts: int
    seconds: float
    relaxed_seconds: float
    lower_bound: float = math.nan
    excess_lower_bound: float = math.nan
    excess_rtol: float = DEFAULT_EXCESS_RTOL
    excess_resolution: float = 0.0

    @property
    def tight_dims(self) -> tuple[int, ...]:
        """Dimensions at which the relaxation is tight."""
        return tuple(r.d for r in self.rows if r.tight)

    def to_dict(self) -> dict:
        """JSON-safe dictionary.

        Always has ``relaxed_loss``, ``rank`` and ``rows`` (each with ``d``, ``best_loss``,
        ``rel_gap``, ``tight``, ``reached``, ``restarts``, ``gram_distance``), plus context
        keys. Non-finite numbers are written as the strings ``"NaN"``, ``"Infinity"``,
        ``"-Infinity"``.
        """
        return {
            "relaxed_loss": _num(self.relaxed_loss), "rank": self.rank,
            "rows": [r.to_dict() for r in self.rows],
            "counts": list(self.spec.counts), "tau": self.spec.tau, "level": self.level,
            "relaxed_excess": _num(self.relaxed_excess), "relaxed_status": self.relaxed_status,
            "relaxed_gram": [[_num(x) for x in row] for row in self.relaxed_gram],
            "lower_bound": _num(self.lower_bound),
            "excess_lower_bound": _num(self.excess_lower_bound),
            "rtol": self.rtol, "excess_rtol": self.excess_rtol,
            "excess_resolution": _num(self.excess_resolution),
            "seed": self.seed, "restarts": self.restarts,
            "seconds": _num(self.seconds), "relaxed_seconds": _num(self.relaxed_seconds),
            "rule": _rule(self),
        }


def _num(x: float) -> float | str:
    x = float(x)
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _rule(report: TightnessReport) -> str:
    return (f"tight: (best_loss - lower_bound) / |lower_bound| <= {report.rtol:g} and "
            f"(best_excess - excess_lower_bound) / excess_lower_bound <= "
            f"{report.excess_rtol:g}; reached: restarts meeting the same test")


def _certified_reference(relaxed, loss: float, excess: float) -> tuple[float, float]:
    """``(LB, E_LB)``: the weaker of the relaxed certificates, or the reference itself.

    ``E_LB = E (1 - excess_gap)`` avoids the cancellation of ``LB - sum n_c log(n_c - 1)``.
    The sample-level bound also bounds the class-level optimum (class Grams lift to sample
    Grams), so the weaker of the two is valid at both levels of the non-convex problem.
    """
    certs = [c for c in (getattr(relaxed, "certificate", None),
                         getattr(relaxed, "sample_certificate", None)) if c is not None]
    if not certs:
        lower = float(getattr(relaxed, "lower_bound", loss))
        return lower, excess - (loss - lower)
    lower = min(float(c.lower_bound) for c in certs)
    worst = max(float(c.excess_gap) for c in certs)
    return lower, (excess * (1.0 - worst) if worst < 1 else 0.0)


def _check_tol(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def _rel(value: float, ref: float) -> float:
    """``(value - ref) / |ref|``; a zero reference (underflow) gives 0 or +-inf."""
    if ref != 0:
        return float((value - ref) / abs(ref))
    return 0.0 if value == ref else math.copysign(math.inf, value - ref)


def judge(loss: float, excess: float, lower_bound: float, excess_lower_bound: float, *,
          rtol: float = DEFAULT_RTOL, excess_rtol: float = DEFAULT_EXCESS_RTOL,
          resolution: float = 0.0) -> tuple[float, float, bool]:
    """The tightness rule for one non-convex point (see the module docstring).

    Parameters
    ----------
    loss, excess : float
        Loss of the point and its excess over the loss's constant.
    lower_bound, excess_lower_bound : float
        ``LB`` and ``E_LB`` of the certified relaxation.
    rtol, excess_rtol : float
        Tolerances on the loss-relative and the excess-relative gap.
    resolution : float
        Absolute rounding bound of ``excess``; the verdict must hold with the excess
        raised by this much.

    Returns
    -------
    rel_gap, excess_gap, tight : float, float, bool
        ``excess_gap`` is infinite when ``E_LB`` is not positive (nothing can be shown).
    """
    rel = _rel(loss, lower_bound)
    if excess_lower_bound > 0:
        ex = _rel(excess, excess_lower_bound)
        worst = _rel(excess + resolution, excess_lower_bound)
    else:
        ex = worst = math.inf
    return rel, ex, bool(rel <= rtol and worst <= excess_rtol)


def _check_dims(dims) -> tuple[int, ...]:
    if isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
        dims = (dims,)
    try:
        dims = tuple(dims)
    except TypeError:
        raise InvalidInputError(f"dims must be a sequence of integers, got {dims!r}") from None
    if not dims:
        raise InvalidInputError("dims must not be empty")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise InvalidInputError(f"every dimension must be an integer >= 1, got {d!r}")
    return tuple(int(d) for d in dims)


def class_gram_of(features: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Class Gram of features: block means of ``H H^T`` off the diagonal, 1 on it.

    Equals ``U U^T`` exactly when every class is collapsed to one class mean ``U_c``.
    """
    S = class_sums(features, labels, k)
    counts = np.bincount(labels, minlength=k).astype(float)
    M = (S @ S.T) / np.outer(counts, counts)
    np.fill_diagonal(M, 1.0)
    return M


def _within_class_spread(H: np.ndarray, labels: np.ndarray) -> float:
    worst = 0.0
    for c in np.unique(labels):
        X = H[labels == c]
        if len(X) > 1:
            # Largest pairwise distance via the Gram: ||x - y||^2 = 2 - 2 x.y for unit rows,
            # which loses accuracy near 0, so use differences directly (classes are small).
            diff = X[:, None, :] - X[None, :, :]
            worst = max(worst, float(np.sqrt(np.max(np.sum(diff * diff, axis=2)))))
    return worst


def tightness(spec: ProblemSpec, dims: Sequence[int], restarts: int = 10, level: str = "class",
              seed: int = 0, *, rtol: float = DEFAULT_RTOL,
              excess_rtol: float = DEFAULT_EXCESS_RTOL, tol: float = DEFAULT_TOL,
              max_iter: int = DEFAULT_MAX_ITER, relaxed=None,
              progress: Callable[[int, int], None] | None = None,
              time_limit: float | None = None,
              threads: int | None = None) -> TightnessReport:
    """Compare the non-convex optimum in each dimension with the certified relaxed optimum.

    Parameters
    ----------
    spec : ProblemSpec
        Class counts and temperature.
    dims : sequence of int
        Feature dimensions to test (each ``>= 1``), reported in this order.
    restarts : int, default 10
        Random starts per dimension.
    level : {"class", "sample"}, default "class"
        Non-convex problem over class means or over all sample features.
    seed : int, default 0
        Root seed; dimension ``d`` uses ``SeedSequence([seed, d])``, so adding a dimension
        does not change the others.
    rtol : float, default 1e-6
        Tolerance of ``tight`` and ``reached`` on the gap relative to the loss.
    excess_rtol : float, default 1e-3
        Tolerance of ``tight`` and ``reached`` on the gap relative to the excess loss.
    tol : float
        Relative gradient tolerance of the non-convex runs
        (:func:`scconvex.features.nonconvex.minimize_spheres`).
    max_iter : int
        Iteration cap per run.
    relaxed : result object, optional
        A precomputed relaxed solution with ``loss``, ``class_gram``, ``rank`` and
        ``status`` (``rank`` and ``excess_loss`` are computed when absent). Its
        ``certificate`` and ``sample_certificate``, when present, give the certified
        lower bound the dimensions are judged against; without them (an exact reference)
        its ``lower_bound``, or else its ``loss``, is used. By default
        ``scconvex.pipeline.solve.solve(spec, level="class")`` is called.
    progress : callable, optional
        Called as ``progress(done, total)`` after each (dimension, restart), with
        ``total = len(dims) * restarts``. Nothing is printed otherwise.
    time_limit : float, optional
        Seconds for the whole call. The relaxed solve gets it as its time limit; once it
        has passed a running restart stops and no new restart or dimension is started,
        so the report may hold fewer rows than ``dims`` and rows with fewer runs than
        ``restarts`` (only complete runs count).
    threads : int, optional
        BLAS threads of the relaxed solve and the non-convex runs
        (:func:`scconvex.threads.choose_threads`: one unless given).

    Returns
    -------
    TightnessReport

    Raises
    ------
    InvalidInputError
        On invalid dimensions, restarts, level, seed or tolerances.
    SolveFailedError
        If the relaxed solve produced no point to compare with.

    Examples
    --------
    >>> from scconvex.problem.spec import ProblemSpec
    >>> rep = tightness(ProblemSpec((5, 5, 5), 0.5), dims=[1, 2], restarts=2)  # doctest: +SKIP
    >>> [(r.d, r.tight) for r in rep.rows]  # doctest: +SKIP
    [(1, False), (2, True)]
    """
    if not isinstance(spec, ProblemSpec):
        raise InvalidInputError(f"spec must be a ProblemSpec, got {type(spec).__name__}")
    dims = _check_dims(dims)
    if level not in NONCONVEX_LEVELS:
        raise InvalidInputError(f"unknown level {level!r}; choose one of {NONCONVEX_LEVELS}")
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) \
            or restarts < 1:
        raise InvalidInputError(f"restarts must be an integer >= 1, got {restarts!r}")
    restarts = int(restarts)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    rtol = _check_tol(rtol, "rtol")
    excess_rtol = _check_tol(excess_rtol, "excess_rtol")
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress must be callable")

    if time_limit is not None and not (isinstance(time_limit, (int, float))
                                       and math.isfinite(time_limit) and time_limit > 0):
        raise InvalidInputError(f"time_limit must be finite and > 0, got {time_limit!r}")
    per_sample = get_level(level).dense  # features of samples, not of class means
    rows_nc = get_level(level).rows(spec)
    check_memory(nonconvex_bytes(rows_nc, max(dims), restarts),
                 f"the non-convex {level}-level problem ({rows_nc} x {max(dims)} features)",
                 "use smaller --dims" + (f" or --level {CLASS.name}" if per_sample
                                         and CLASS in loss_of(spec).levels else ""))
    t_start = time.perf_counter()
    deadline = math.inf if time_limit is None else t_start + float(time_limit)
    if relaxed is None:
        relaxed = solve(spec, level=CLASS.name, threads=threads,
                        options=None if time_limit is None else {"time_limit": time_limit})
    relaxed_seconds = time.perf_counter() - t_start
    M_star = getattr(relaxed, "class_gram", None)
    L_star = float(getattr(relaxed, "loss", math.nan))
    if M_star is None or not math.isfinite(L_star):
        raise SolveFailedError("the relaxed solve produced no point to compare with: "
                               f"{getattr(relaxed, 'message', 'no message')}", relaxed)
    M_star = np.asarray(M_star, dtype=float)
    if M_star.shape != (spec.k, spec.k):
        raise InvalidInputError(f"the relaxed class Gram must have shape {(spec.k, spec.k)}, "
                                f"got {M_star.shape}")
    E_star = float(getattr(relaxed, "excess_loss", L_star - spec.constant))
    rank = getattr(relaxed, "rank", None)
    rank = numerical_rank(M_star) if rank is None else int(rank)
    status = str(getattr(relaxed, "status", "unknown"))
    L_lb, E_lb = _certified_reference(relaxed, L_star, E_star)

    # At sample level the non-convex excess is a difference of two large sums, known only
    # to within this much; the verdict counts that uncertainty against tightness.
    resolution = dense_rounding(spec.n, spec.tau) if per_sample else 0.0

    def gaps_of(loss: float, excess: float) -> tuple[float, float, bool]:
        return judge(loss, excess, L_lb, E_lb, rtol=rtol, excess_rtol=excess_rtol,
                     resolution=resolution)

    total = len(dims) * restarts
    done = 0
    rows = []
    labels = spec.labels if per_sample else None
    for d in dims:
        if time.perf_counter() > deadline:
            break
        offset = done

        def _tick(i: int, _n: int, _offset: int = offset) -> None:
            progress(_offset + i, total)

        res = minimize_spheres(spec, d, level=level, restarts=restarts,
                               seed=np.random.SeedSequence([seed, d]), tol=tol,
                               max_iter=max_iter, threads=threads,
                               progress=_tick if progress is not None else None,
                               deadline=deadline)
        if res.timed_out:
            break  # not one complete run in this dimension: reported as not tested
        done += restarts
        verdicts = [gaps_of(loss, ex)[2]
                    for loss, ex in zip(res.losses, res.excesses, strict=True)]
        best_gap, best_excess_gap, tight = gaps_of(res.loss, res.excess)
        if per_sample:
            M_nc = class_gram_of(res.features, labels, spec.k)
            spread = _within_class_spread(res.features, labels)
        else:
            M_nc = res.features @ res.features.T
            spread = None
        rows.append(TightnessRow(
            d=d, best_loss=res.loss, best_excess=res.excess, rel_gap=float(best_gap),
            excess_gap=float(best_excess_gap), tight=tight, reached=int(sum(verdicts)),
            restarts=len(res.losses), gram_distance=float(np.linalg.norm(M_nc - M_star)),
            within_class_spread=spread, converged=int(sum(res.converged)),
            max_iterations=int(max(res.iterations)),
            max_grad_norm=float(max(res.grad_norms)), seconds=res.total_seconds,
            features=res.features))
    return TightnessReport(spec, level, L_star, E_star, rank, status, M_star, tuple(rows), rtol,
                           seed, restarts, time.perf_counter() - t_start, relaxed_seconds,
                           lower_bound=L_lb, excess_lower_bound=E_lb,
                           excess_rtol=excess_rtol, excess_resolution=resolution)


def format_table(report: TightnessReport) -> str:
    """Human-readable table of a :class:`TightnessReport` (no trailing newline)."""
    spec = report.spec
    counts = ",".join(str(c) for c in spec.counts)
    lines = [
        f"tightness of the relaxation: counts {counts}, tau {spec.tau:g}, "
        f"{report.level} level, {report.restarts} restarts per d, seed {report.seed}",
        f"relaxed optimum: loss {report.relaxed_loss:.10g} (excess "
        f"{report.relaxed_excess:.6e}), rank {report.rank}, status {report.relaxed_status}",
        f"certified lower bound {report.lower_bound:.10g} (excess "
        f"{report.excess_lower_bound:.6e}); gaps are measured from it",
        f"tight: loss-relative gap <= {report.rtol:g} and excess-relative gap <= "
        f"{report.excess_rtol:g}; reached: restarts within both; a gap below 0 by no more "
        f"than the rounding of the losses is shown as 0",
    ]
    if report.excess_resolution > report.excess_rtol * report.excess_lower_bound:
        lines += [f"note: at {report.level} level the excess of a point is known only to "
                  f"+-{report.excess_resolution:.1e}, more than the excess tolerance;",
                  "a dimension is tight only if it passes with that uncertainty (class level "
                  "computes the excess exactly)"]
    if not report.excess_lower_bound > 0:
        lines += ["note: the certified lower bound leaves no positive excess (at this tau the "
                  "excess underflows float64, or the relaxed gap is too large); no dimension "
                  "can be shown tight, so 'no' here means 'not shown', not 'not tight'"]
    lines.append("")
    per_sample = get_level(report.level).dense
    header = (f"{'d':>3}  {'best loss':>16}  {'rel gap':>9}  {'excess gap':>10}  "
              f"{'tight':>5}  {'reached':>7}  {'gram dist':>9}")
    if per_sample:
        header += f"  {'spread':>8}"
    header += f"  {'max it':>6}  {'time':>7}"
    lines += [header, "-" * len(header)]
    # A point cannot beat the certified bound; a gap below 0 is the rounding of the two
    # losses, and within that rounding it is shown as 0.
    eps = 16.0 * np.finfo(float).eps
    rel_res = (report.excess_resolution + eps * abs(report.lower_bound)) / max(
        abs(report.lower_bound), 1e-300)
    ex_res = (report.excess_resolution / report.excess_lower_bound + eps
              if report.excess_lower_bound > 0 else 0.0)
    for r in report.rows:
        rel, ex = _gap_cell(r.rel_gap, rel_res, 9), _gap_cell(r.excess_gap, ex_res, 10)
        line = (f"{r.d:>3}  {r.best_loss:>16.10f}  {rel}  {ex}  "
                f"{'yes' if r.tight else 'no':>5}  {f'{r.reached}/{r.restarts}':>7}  "
                f"{r.gram_distance:>9.1e}")
        if per_sample:
            line += f"  {r.within_class_spread:>8.1e}"
        line += f"  {r.max_iterations:>6d}  {r.seconds:>6.2f}s"
        lines.append(line)
    lines.append(f"total time {report.seconds:.2f}s (relaxed solve {report.relaxed_seconds:.2f}s)")
    return "\n".join(lines)


def _gap_cell(gap: float, resolution: float, width: int) -> str:
    """A gap of the table: 0 where it is below 0 by no more than ``resolution``."""
    if -resolution <= gap < 0:
        return f"{0:>{width}}"
    return f"{gap:>{width}.1e}"
