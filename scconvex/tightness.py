"""Tightness report: does the non-convex problem in dimension ``d`` reach the relaxed optimum?

For each ``d`` the non-convex solver (:func:`scconvex.nonconvex.minimize_spheres`) is run
from several seeded random starts and its best loss is compared with the certified optimum
of the convex relaxation (:func:`scconvex.solve.solve` at class level). The relaxation is
*tight* at ``d`` when some feature set in dimension ``d`` attains the relaxed optimum; the
landscape is benign there when *every* restart does.

Rules (relative to the relaxed loss ``L*``, with ``rtol = 1e-6`` by default):

* ``rel_gap = (best_loss - L*) / |L*|``; it can be slightly negative when the conic
  solution is less accurate than the non-convex one;
* ``tight``: ``rel_gap <= rtol``;
* ``reached``: the number of restarts whose own relative gap is ``<= rtol``;
* ``gram_distance``: ``||M_nc - M*||_F`` (absolute), ``M*`` the relaxed class Gram and
  ``M_nc`` the class Gram of the best non-convex point (at sample level, the mean of each
  off-diagonal class block of ``H H^T``, with unit diagonal).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError, SolveFailedError
from .factor import numerical_rank
from .model import class_sums
from .nonconvex import DEFAULT_MAX_ITER, DEFAULT_TOL, NONCONVEX_LEVELS, minimize_spheres
from .resources import check_memory, nonconvex_bytes
from .spec import ProblemSpec

DEFAULT_RTOL = 1e-6
"""Relative loss tolerance of ``tight`` and ``reached``."""


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
        ``(best_loss - L*) / |L*|``.
    excess_gap : float
        ``(best_excess - E*) / E*``: the same gap measured on the geometry-dependent part
        of the loss, informative at small ``tau`` where ``rel_gap`` is compressed.
    tight : bool
        ``rel_gap <= rtol``.
    reached : int
        Restarts with relative gap ``<= rtol``.
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
    rank : int
        Numerical rank of the relaxed class Gram (as reported by the solve).
    relaxed_status : str
        Status of the relaxed solve (``"optimal"`` when certified).
    relaxed_gram : ndarray, shape (k, k)
    rows : tuple of TightnessRow
        One per requested dimension, in the order given.
    rtol : float
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
            "rtol": self.rtol, "seed": self.seed, "restarts": self.restarts,
            "seconds": _num(self.seconds), "relaxed_seconds": _num(self.relaxed_seconds),
            "rule": (f"tight: (best_loss - relaxed_loss) / |relaxed_loss| <= {self.rtol:g}; "
                     "reached: restarts meeting the same test"),
        }


def _num(x: float) -> float | str:
    x = float(x)
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _rel(value: float, ref: float) -> float:
    """``(value - ref) / |ref|``; a zero reference (underflow) gives 0 or +-inf."""
    if ref != 0:
        return float((value - ref) / abs(ref))
    return 0.0 if value == ref else math.copysign(math.inf, value - ref)


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
              seed: int = 0, *, rtol: float = DEFAULT_RTOL, tol: float = DEFAULT_TOL,
              max_iter: int = DEFAULT_MAX_ITER, relaxed=None,
              progress: Callable[[int, int], None] | None = None,
              time_limit: float | None = None) -> TightnessReport:
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
        Relative loss tolerance of ``tight`` and ``reached``.
    tol : float
        Relative gradient tolerance of the non-convex runs
        (:func:`scconvex.nonconvex.minimize_spheres`).
    max_iter : int
        Iteration cap per run.
    relaxed : result object, optional
        A precomputed relaxed solution with ``loss``, ``class_gram``, ``rank`` and
        ``status`` (``rank`` and ``excess_loss`` are computed when absent); by default
        ``scconvex.solve.solve(spec, level="class")`` is called.
    progress : callable, optional
        Called as ``progress(done, total)`` after each (dimension, restart), with
        ``total = len(dims) * restarts``. Nothing is printed otherwise.
    time_limit : float, optional
        Seconds for the whole call. The relaxed solve gets it as its time limit; once it
        has passed no new restart and no new dimension is started, so the report may hold
        fewer rows than ``dims`` and rows with fewer runs than ``restarts``.

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
    >>> from scconvex.spec import ProblemSpec
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
    try:
        rtol = float(rtol)
    except (TypeError, ValueError):
        raise InvalidInputError(f"rtol must be a number, got {rtol!r}") from None
    if not (math.isfinite(rtol) and rtol >= 0):
        raise InvalidInputError(f"rtol must be finite and >= 0, got {rtol!r}")
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress must be callable")

    if time_limit is not None and not (isinstance(time_limit, (int, float))
                                       and math.isfinite(time_limit) and time_limit > 0):
        raise InvalidInputError(f"time_limit must be finite and > 0, got {time_limit!r}")
    rows_nc = spec.k if level == "class" else spec.n
    check_memory(nonconvex_bytes(rows_nc, max(dims), restarts),
                 f"the non-convex {level}-level problem ({rows_nc} x {max(dims)} features)",
                 "use smaller --dims" + (" or --level class" if level == "sample" else ""))
    t_start = time.perf_counter()
    deadline = math.inf if time_limit is None else t_start + float(time_limit)
    if relaxed is None:
        from .solve import solve

        relaxed = solve(spec, level="class",
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

    total = len(dims) * restarts
    done = 0
    rows = []
    labels = spec.labels if level == "sample" else None
    for d in dims:
        if time.perf_counter() > deadline:
            break
        offset = done

        def _tick(i: int, _n: int, _offset: int = offset) -> None:
            progress(_offset + i, total)

        res = minimize_spheres(spec, d, level=level, restarts=restarts,
                               seed=np.random.SeedSequence([seed, d]), tol=tol,
                               max_iter=max_iter,
                               progress=_tick if progress is not None else None,
                               deadline=deadline)
        done += restarts
        gaps = [_rel(loss, L_star) for loss in res.losses]
        best_gap = _rel(res.loss, L_star)
        if level == "class":
            M_nc = res.features @ res.features.T
            spread = None
        else:
            M_nc = class_gram_of(res.features, labels, spec.k)
            spread = _within_class_spread(res.features, labels)
        rows.append(TightnessRow(
            d=d, best_loss=res.loss, best_excess=res.excess, rel_gap=float(best_gap),
            excess_gap=_rel(res.excess, E_star) if E_star > 0 else math.nan,
            tight=bool(best_gap <= rtol), reached=int(sum(g <= rtol for g in gaps)),
            restarts=len(res.losses), gram_distance=float(np.linalg.norm(M_nc - M_star)),
            within_class_spread=spread, converged=int(sum(res.converged)),
            max_iterations=int(max(res.iterations)),
            max_grad_norm=float(max(res.grad_norms)), seconds=res.total_seconds))
    return TightnessReport(spec, level, L_star, E_star, rank, status, M_star, tuple(rows), rtol,
                           seed, restarts, time.perf_counter() - t_start, relaxed_seconds)


def format_table(report: TightnessReport) -> str:
    """Human-readable table of a :class:`TightnessReport` (no trailing newline)."""
    spec = report.spec
    counts = ",".join(str(c) for c in spec.counts)
    lines = [
        f"tightness of the relaxation: counts {counts}, tau {spec.tau:g}, "
        f"{report.level} level, {report.restarts} restarts per d, seed {report.seed}",
        f"relaxed optimum: loss {report.relaxed_loss:.10g} (excess "
        f"{report.relaxed_excess:.6e}), rank {report.rank}, status {report.relaxed_status}",
        f"tight: (best - relaxed) / |relaxed| <= {report.rtol:g}; reached: restarts within it",
        "",
    ]
    header = (f"{'d':>3}  {'best loss':>16}  {'rel gap':>9}  {'excess gap':>10}  "
              f"{'tight':>5}  {'reached':>7}  {'gram dist':>9}")
    if report.level == "sample":
        header += f"  {'spread':>8}"
    header += f"  {'max it':>6}  {'time':>7}"
    lines += [header, "-" * len(header)]
    for r in report.rows:
        line = (f"{r.d:>3}  {r.best_loss:>16.10f}  {r.rel_gap:>9.1e}  {r.excess_gap:>10.1e}  "
                f"{'yes' if r.tight else 'no':>5}  {f'{r.reached}/{r.restarts}':>7}  "
                f"{r.gram_distance:>9.1e}")
        if report.level == "sample":
            line += f"  {r.within_class_spread:>8.1e}"
        line += f"  {r.max_iterations:>6d}  {r.seconds:>6.2f}s"
        lines.append(line)
    lines.append(f"total time {report.seconds:.2f}s (relaxed solve {report.relaxed_seconds:.2f}s)")
    return "\n".join(lines)
