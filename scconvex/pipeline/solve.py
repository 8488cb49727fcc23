"""The pipeline: spec -> model -> backend -> repair -> certify -> result.

:func:`solve` is the one entry point. It always returns a :class:`SolveResult` with the same
fields, whatever the level and backend; its ``status`` comes from the certificate, not
from the solver: a solver's "optimal" whose certified gap exceeds the tolerance is reported
as ``"uncertified"``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..certificates.bars import CosineBars, model_bars, printed_up, width_note
from ..certificates.certify import (
    DEFAULT_EXCESS_TOL,
    DEFAULT_GAP_TOL,
    Certificate,
    Rounder,
    badness,
)
from ..certificates.repair import gram_spectrum
from ..checks import check_tolerance
from ..errors import InvalidInputError, ResourceLimitError, ScconvexError, SolveFailedError
from ..levels import AUTO, CLASS, GROUP, SAMPLE
from ..levels.blocks import RANK_TOL
from ..problem.model import Model, build_model
from ..problem.spec import ProblemSpec
from ..resources import check_memory, fastest_run
from ..solvers import BACKENDS, Backend, RawResult, get_backend
from ..solvers.refine import polish
from ..threads import blas_threads, check_threads, choose_threads

log = logging.getLogger(__name__)

STATUSES = ("optimal", "uncertified", "failed")
"""``optimal``: both certificates within ``gap_tol`` (relative to the loss) and within
``excess_tol`` (relative to the excess loss); ``uncertified``: a feasible point whose
certified gap is larger; ``failed``: the backend produced no usable point."""

SOLVERS = ("auto", "native", "clarabel", "scs")

REFINE_BARS = 1e-6
"""A certified answer whose widest proven cosine bar is above this is polished
(:func:`scconvex.solvers.refine.polish`, small models only); the polished answer is kept
when it is certified and its bars are narrower."""

REFINE_GAIN = 0.5
"""The polished answer replaces the solver's only when its widest bar is at most this
fraction of the solver's."""

DETERMINED = 1e-3
"""Above this widest bar the message says the cosines are not determined."""

__all__ = ["DEFAULT_EXCESS_TOL", "DEFAULT_GAP_TOL", "RANK_TOL", "SOLVERS", "STATUSES",
           "SolveResult", "solve"]


@dataclass(frozen=True, eq=False)
class SolveResult:
    """The certified answer of :func:`solve`.

    Built by keyword; the stages own its parts: the model (spec and level), the backend's
    raw answer (``solver``, ``raw_status``, ``iterations``), the repaired point and its two
    certificates, and the pipeline's verdict (``status``, ``message``). The loss, bounds
    and gaps are read from the certificates.

    Attributes
    ----------
    spec : ProblemSpec
    model : Model
        The convex program that was solved (its level object is ``model.level``).
    solver : str
        Backend that produced the point.
    status : str
        One of :data:`STATUSES`.
    message : str
    variable : ndarray or None
        The repaired model variable (``B`` at class/group level, ``G`` at sample level).
    certificate : Certificate or None
        Certificate at the solved level (over class Grams, or sample Grams at sample level).
    sample_certificate : Certificate or None
        Certificate over all sample Grams (the full n x n relaxation).
    rank : int
        Numerical rank of the class Gram (eigenvalues above ``RANK_TOL`` times the largest).
    min_eigenvalue : float
        Smallest eigenvalue of the class (or sample) Gram: feasibility, >= 0.
    seconds : float
        Wall time of the whole pipeline.
    timings : dict
        Seconds per stage (``solve``, ``repair_and_certify``, ``bars``; ``refine`` when
        the answer was polished, :data:`REFINE_BARS`).
    raw_status : str
        What the backend said, before certification.
    iterations : int
        The backend's iterations.
    repair_shift : float
        Largest entry change of the repair.
    gap_tol, excess_tol : float
        The tolerances the status was judged by.
    bars : CosineBars or None
        Proven intervals of the optimal cosines and the uniqueness proof
        (:func:`scconvex.certificates.bars.model_bars`); None when the answer is not
        certified or the loss has no curvature rows. At sample level they are the bars
        of the answer's class Gram.
    """

    spec: ProblemSpec
    model: Model
    solver: str
    status: str
    message: str
    variable: np.ndarray | None = None
    certificate: Certificate | None = None
    sample_certificate: Certificate | None = None
    rank: int = 0
    min_eigenvalue: float = math.nan
    seconds: float = math.nan
    timings: dict = field(default_factory=dict)
    raw_status: str = ""
    iterations: int = 0
    repair_shift: float = math.nan
    gap_tol: float = DEFAULT_GAP_TOL
    excess_tol: float = DEFAULT_EXCESS_TOL
    bars: CosineBars | None = None

    @property
    def level(self) -> str:
        """Name of the level that was solved (``"group"``, ``"class"`` or ``"sample"``)."""
        return self.model.level.name

    def _cert(self, sample: bool, name: str) -> float:
        cert = self.sample_certificate if sample else self.certificate
        return math.nan if cert is None else getattr(cert, name)

    @property
    def loss(self) -> float:
        """Loss at the repaired, feasible point (``nan`` if failed)."""
        return self._cert(False, "loss")

    @property
    def excess_loss(self) -> float:
        """``loss - sum n_c log(n_c - 1)``, computed without cancellation."""
        return self._cert(False, "excess_loss")

    @property
    def lower_bound(self) -> float:
        """Certified lower bound at the solved level."""
        return self._cert(False, "lower_bound")

    @property
    def gap(self) -> float:
        """``loss - lower_bound`` at the solved level."""
        return self._cert(False, "gap")

    @property
    def rel_gap(self) -> float:
        """The gap at the solved level relative to the loss."""
        return self._cert(False, "rel_gap")

    @property
    def sample_lower_bound(self) -> float:
        """Certified lower bound over all sample Grams."""
        return self._cert(True, "lower_bound")

    @property
    def sample_gap(self) -> float:
        """``loss - sample_lower_bound``."""
        return self._cert(True, "gap")

    @property
    def sample_rel_gap(self) -> float:
        """The gap over all sample Grams relative to the loss."""
        return self._cert(True, "rel_gap")

    @property
    def unique(self) -> bool | None:
        """Whether the optimal geometry is unique, as a proof (``bars.reason`` says why):
        True or False proven, None when not proven (an uncertified answer, or cosines
        between classes of one sample that the relaxation does not pin)."""
        return None if self.bars is None else self.bars.unique

    @property
    def success(self) -> bool:
        """True when the answer is certified optimal."""
        return self.status == "optimal"

    @cached_property
    def class_gram(self) -> np.ndarray | None:
        """``k x k`` Gram matrix of the class means (lifted from the group level if needed)."""
        if self.variable is None:
            return None
        return self.model.level.class_gram(self.model, self.variable)

    def to_dict(self, *, full_gram: bool = False) -> dict[str, Any]:
        """JSON-safe dictionary (see :func:`scconvex.pipeline.report.result_dict` for the
        format)."""
        from .report import result_dict

        return result_dict(self, full_gram=full_gram)


def _failed(spec, model, solver, message, raw: RawResult | None, seconds, timings, tols):
    return SolveResult(spec=spec, model=model, solver=solver, status="failed",
                       message=message, seconds=seconds, timings=timings,
                       raw_status=raw.status if raw else "error",
                       iterations=raw.iterations if raw else 0, gap_tol=tols[0],
                       excess_tol=tols[1])


def _pipeline(spec: ProblemSpec, model: Model, solver: str, options,
              tols: tuple[float, float], t_start: float, threads: int | None = None
              ) -> SolveResult:
    with blas_threads(choose_threads(threads)):
        return _run_pipeline(spec, model, solver, options, tols, t_start)


def _run_pipeline(spec: ProblemSpec, model: Model, solver: str, options,
                  tols: tuple[float, float], t_start: float) -> SolveResult:
    backend = get_backend(solver)
    check_memory(model.level.memory(model, solver),
                 f"the {model.level.name} level ({model.dim} x {model.dim}) with the "
                 f"{solver} solver", level_hint(model, backend))
    limit = backend.check_options(options).get("time_limit")  # validated before use
    deadline = math.inf if limit is None else t_start + float(limit)
    if limit is not None:
        # The backend gets what is left after keeping time to repair and certify; when
        # even that does not fit, say so now rather than overrun the limit by minutes.
        left = deadline - time.perf_counter()
        reserve = certify_seconds(model)
        if reserve > 0 and reserve > left:
            return _failed(spec, model, solver, f"time limit {float(limit):g} s: repairing and "
                           f"certifying a {model.dim} x {model.dim} answer takes about "
                           f"{reserve:.0f} s on this machine now; raise --time-limit",
                           None, time.perf_counter() - t_start, {}, tols)
        options = {**options, "time_limit": max(left - reserve, 1e-3)}
    timings: dict[str, float] = {}
    rounder = Rounder(model, tols, deadline)
    t0 = time.perf_counter()
    try:
        raw = backend.solve(model, options, rounder=rounder)
    except SolveFailedError as exc:
        raw = RawResult("error", None, str(exc))
    except (ScconvexError, MemoryError):
        raise
    except Exception as exc:
        # A bug in a backend is a failed solve, not a crash of the pipeline: the fallback
        # still runs, and the message names the error so that it gets reported.
        log.debug("internal error in the %s backend", solver, exc_info=True)
        raw = RawResult("error", None, f"internal error in the {solver} backend "
                        f"({type(exc).__name__}: {exc}); please report it")
    timings["solve"] = time.perf_counter() - t0
    if raw.X is None:
        return _failed(spec, model, solver, raw.message or "the solver returned no point",
                       raw, time.perf_counter() - t_start, timings, tols)
    t0 = time.perf_counter()
    try:
        rounded = rounder.result_for(raw.X, raw.rounded)
    except SolveFailedError as exc:
        return _failed(spec, model, solver, str(exc), raw, time.perf_counter() - t_start,
                       timings, tols)
    X, shift, cert, scert = rounded.X, rounded.shift, rounded.cert, rounded.sample_cert
    # The repair decomposed X to show it feasible; at g = 3000 a second decomposition
    # would cost about 1.6 s.
    spectrum = rounded.spectrum if rounded.spectrum is not None else gram_spectrum(model, X)
    lam = spectrum.min
    timings["repair_and_certify"] = time.perf_counter() - t0
    ok = (badness(cert, tols) <= 1 and badness(scert, tols) <= 1 and lam >= 0
          and math.isfinite(cert.loss))
    status = "optimal" if ok else "uncertified"
    if ok:
        message = "certified: relative gap " + ", ".join(
            f"{c.rel_gap:.2e} over {c.level} Grams" for c in dict.fromkeys((cert, scert)))
    else:
        message = _uncertified_message(model, solver, cert, scert, lam, tols, raw.status)
        if raw.status == "time_limit":
            limit_text = "" if limit is None else f" {float(limit):g} s"
            message = f"time limit{limit_text} reached before a certified answer; {message}"
        elif _collapse_unproven(model, cert, scert, tols):
            message = (f"optimal among class-collapsed geometries (certified over class "
                       f"Grams, relative gap {cert.rel_gap:.2e}); over all sample Grams the "
                       f"certified gap is {scert.gap:.3g} ({scert.excess_gap:.2e} of the "
                       "excess loss): collapse is not proven optimal for this loss, a "
                       "geometry whose samples differ within a class may do better by at "
                       "most that much")
    if raw.message:
        message += f" [{solver}: {raw.message}]"
    bars = None
    if ok:
        t0 = time.perf_counter()
        bars = model_bars(model, X, cert, scert, claim=True)
        if (bars is not None and bars.max_half_width > REFINE_BARS and not model.level.dense
                and time.perf_counter() < deadline):
            t1 = time.perf_counter()
            better = _refine(model, X, rounder, bars, spectrum.rank(RANK_TOL))
            timings["refine"] = time.perf_counter() - t1
            if better is not None:
                rounded, spectrum, polished = better
                message += (f"; polished on the KKT equations (widest cosine bar "
                            f"{printed_up(bars.max_half_width)} -> "
                            f"{printed_up(polished.max_half_width)})")
                X, shift, cert, scert = (rounded.X, rounded.shift, rounded.cert,
                                         rounded.sample_cert)
                lam, bars = spectrum.min, polished
        timings["bars"] = time.perf_counter() - t0
        message += _bars_note(bars)
    return SolveResult(
        spec=spec, model=model, solver=solver, status=status, message=message, variable=X,
        certificate=cert, sample_certificate=scert, rank=spectrum.rank(RANK_TOL),
        min_eigenvalue=lam, seconds=time.perf_counter() - t_start, timings=timings,
        raw_status=raw.status, iterations=raw.iterations, repair_shift=shift,
        gap_tol=tols[0], excess_tol=tols[1], bars=bars)


def _refine(model: Model, X: np.ndarray, rounder: Rounder, bars: CosineBars, rank: int):
    """The polished answer, rounded, certified and with narrower bars; or None."""
    out = polish(model, X, class_rank=max(rank, 1))
    if out.B is None:
        return None
    rounded = rounder(out.B)
    if rounded.worst > 1:
        return None
    spectrum = (rounded.spectrum if rounded.spectrum is not None
                else gram_spectrum(model, rounded.X))
    polished = model_bars(model, rounded.X, rounded.cert, rounded.sample_cert, claim=True)
    # Kept only for a clear gain: the polished point's gap may be a little larger.
    if spectrum.min < 0 or polished is None or not (
            polished.max_half_width < REFINE_GAIN * bars.max_half_width):
        return None
    return rounded, spectrum, polished


def _bars_note(bars: CosineBars | None) -> str:
    """What the message says about the bars and uniqueness of a certified answer."""
    if bars is None:
        return "; cosine bars not available for this loss"
    text = f"; cosines proven to within {printed_up(bars.max_half_width)} of the optimum"
    note = width_note(bars.max_half_width)
    if note:
        text += note
    elif bars.max_half_width > DETERMINED:
        text += (" (not determined to 1e-3: the loss is so flat along some cosines that "
                 "the certified gap pins them only that far)")
    if bars.unique is not True:
        text += f"; uniqueness {bars.reason}"
    return text


def _uncertified_message(model: Model, solver: str, cert: Certificate, scert: Certificate,
                         lam: float, tols: tuple[float, float], said: str) -> str:
    """What failed (each failing gap once, with its tolerance) and what to try next."""
    failed = []
    for c in dict.fromkeys((cert, scert)):  # one certificate at sample level
        where = f"over {c.level} Grams"
        if not c.excess_gap <= tols[1]:
            value = ("not bounded (the excess is not resolved in float64)"
                     if c.excess_gap == math.inf else f"{c.excess_gap:.2e} > {tols[1]:.1e}")
            failed.append(f"the gap relative to the excess loss {where} is {value}")
        if not c.rel_gap <= tols[0]:
            failed.append(f"the gap relative to the loss {where} is {c.rel_gap:.2e} > "
                          f"{tols[0]:.1e}")
    if lam < 0:
        failed.append(f"the answer is not PSD (smallest eigenvalue {lam:.1e})")
    if not failed:
        failed.append(f"the loss is {cert.loss!r}")
    excess_failed = any("excess" in f for f in failed)
    coarser = [level for level in model.loss.levels if not level.dense]
    if model.level.dense and coarser and excess_failed:
        hint = (f"try --level {coarser[-1].name}: the excess loss is computed exactly there, "
                "and it is what fails here")
    elif solver != "native" and any(b.name == "native" and b.supports(model)
                                    for b in BACKENDS.values()):
        hint = "try --solver native (or auto)"
    elif solver == "native":
        hint = "try --solver clarabel"
    else:
        hint = ("try another --solver, or --gap-tol / --excess-tol if that accuracy "
                "suffices")
    return f"not certified: {'; '.join(failed)}; {hint} (solver said {said!r})"


def level_hint(model: Model, backend: Backend) -> str:
    """What to try instead when ``model`` does not fit in memory with ``backend``: a
    backend that needs less memory at the same level, else the smallest exact level."""
    get_backend("native")  # loads the registry
    lean = [b for b in BACKENDS.values() if b.lean and b.supports(model)]
    if not backend.lean and lean:
        return (f"use --solver {lean[0].name} (it handles the {model.level.name} level in "
                "O(m^2) memory)")
    sides = {level: len(level.partition(model.spec)[0]) if not level.dense
             else model.spec.n for level in model.loss.levels}
    smallest = min(sides, key=sides.get)
    if sides[smallest] < model.dim:
        rows = sides[smallest]
        return (f"use --level {smallest.name} ({rows} row{'s' if rows > 1 else ''} instead "
                f"of {model.dim})")
    if len(sides) == 1:
        # E.g. a batch-wise loss: suggesting a level it refuses would send the user round.
        return (f"{model.loss.description} is defined at the {model.level.name} level only: "
                "a smaller problem is the way")
    return "no smaller level exists for these counts"


CERTIFY_EIGS = 10
"""Repair, certification, rank and feasibility checks cost about this many dense symmetric
eigenvalue problems of the model's size (measured at g = 2696: 182 s for 8 of 24 s)."""


def certify_seconds(model: Model) -> float:
    """Seconds that repairing and certifying an answer of ``model`` takes on this machine.

    :data:`CERTIFY_EIGS` eigenvalue problems of the model's size, extrapolated (cubic) from
    one of at most 400 rows timed now, so that a loaded machine predicts more. Zero for
    models of at most 200 rows.
    """
    m = model.dim
    if m <= 200:
        return 0.0
    m0 = min(m, 400)
    A = np.random.default_rng(0).standard_normal((m0, m0))
    A = A + A.T
    return CERTIFY_EIGS * fastest_run(lambda: np.linalg.eigvalsh(A)) * (m / m0) ** 3


def solve(spec: ProblemSpec | Sequence[int], *, tau: float | None = None,
          level: str | None = None, solver: str = "auto",
          options: Mapping[str, Any] | None = None,
          gap_tol: float = DEFAULT_GAP_TOL,
          excess_tol: float = DEFAULT_EXCESS_TOL,
          threads: int | None = None, **spec_fields) -> SolveResult:
    """Solve the convex relaxation of an SC-loss problem and certify the answer.

    Parameters
    ----------
    spec : ProblemSpec or sequence of int
        Counts, temperature, loss, relaxation and (default) level; or the class counts
        alone, with ``tau`` (and any other :class:`ProblemSpec` field, e.g. ``loss`` or
        ``relaxation``) as keywords: ``solve([20, 20, 2, 2], tau=0.1)``.
    tau : float, optional
        The temperature, when ``spec`` is a count vector (not allowed with a spec).
    **spec_fields
        Further fields of the spec built from a count vector (``loss``, ``relaxation``,
        ``batches``, ``names``).
    level : {"auto", "group", "class", "sample"}, optional
        Overrides ``spec.level``. ``"auto"`` solves at group level when counts repeat and at
        class level otherwise, and retries at class level (up to
        :data:`CLASS_FALLBACK_MAX` classes) when the group-level answer is not certified;
        ``"sample"`` is the dense ``n x n`` program (small ``n``).
    solver : {"auto", "native", "clarabel", "scs"}
        Backend. ``"auto"`` uses the native solver where it supports the level and falls
        back to Clarabel when the native answer is not certified (the result's message
        says so).
    options : dict, optional
        Backend options (e.g. ``tol``, ``max_iter``, ``time_limit``); unknown keys raise.
        ``time_limit`` (seconds) bounds the whole call: rounding stops early once it has
        passed, and with ``solver="auto"`` the Clarabel fallback gets only the time left
        (and is skipped, with a note in the message, when none is left or when it would
        not fit in memory).
    gap_tol : float
        Largest relative certified gap (at the solved level and at sample level) for
        ``status == "optimal"``.
    excess_tol : float
        Largest certified gap relative to the excess loss ``L - sum n_c log(n_c - 1)``
        for ``status == "optimal"``; this is what pins down the geometry at small ``tau``.
    threads : int, optional
        BLAS threads for the solve and the certificate (every loaded BLAS library is
        limited, and restored afterwards). None: :func:`scconvex.threads.choose_threads`,
        one thread, the fastest measured on 2 cores.

    Returns
    -------
    SolveResult
        Never raises for a solver failure: check ``result.status``.

    Raises
    ------
    InvalidInputError
        For an invalid level, solver, options or tolerance.
    ResourceLimitError
        When the chosen level and solver would need more memory than is available
        (:mod:`scconvex.resources`); the message names the estimate and what to use instead.

    Examples
    --------
    >>> from scconvex import ProblemSpec, solve
    >>> res = solve(ProblemSpec((5, 5, 5), tau=0.5))
    >>> res.status, round(res.loss, 8), round(float(res.class_gram[0, 1]), 6)
    ('optimal', 22.55406155, -0.5)
    >>> solve([20, 20, 2, 2], tau=0.1).status
    'optimal'
    """
    spec = _as_spec(spec, tau, spec_fields)
    if solver not in SOLVERS:
        raise InvalidInputError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    tols = (check_tolerance(gap_tol, "gap_tol"), check_tolerance(excess_tol, "excess_tol"))
    threads = check_threads(threads)
    t_start = time.perf_counter()
    model = build_model(spec, level)
    res = _solve_model(spec, model, solver, options, tols, t_start, threads)
    requested = spec.level if level is None else level
    if (requested == AUTO and not res.success and model.level is GROUP
            and spec.k <= CLASS_FALLBACK_MAX):
        # "auto" must not settle for a level that cannot certify where another can.
        log.info("group level not certified (%s); trying class level", res.message)
        other = _solve_model(spec, build_model(spec, CLASS), solver, options, tols,
                             t_start, threads)
        note = f"group level not certified ({res.message}); solved at class level. "
        if other.success or _worst(other, tols) < _worst(res, tols):
            return _with_message(other, note + other.message)
        return _with_message(res, note + f"class level was no better ({other.message}); "
                             "kept the group-level answer")
    if (requested == AUTO and res.certificate is not None and _collapse_unproven(
            model, res.certificate, res.sample_certificate, tols)
            and SAMPLE in model.loss.levels):
        # Collapse is not proven optimal: where the sample level fits, solve it there.
        log.info("collapse not proven optimal (%s); trying sample level", res.message)
        try:
            other = _solve_model(spec, build_model(spec, SAMPLE), solver, options, tols,
                                 t_start, threads)
        except ResourceLimitError as exc:
            return _with_message(res, f"{res.message}; the sample level was not tried: {exc}")
        note = f"class level: {res.message}; solved at sample level. "
        if other.success or _worst(other, tols) < _worst(res, tols):
            return _with_message(other, note + other.message)
        return _with_message(res, f"{res.message}; the sample level was no better "
                             f"({other.message})")
    return res


def _as_spec(spec, tau, fields: dict) -> ProblemSpec:
    """The spec of :func:`solve`: ``spec`` itself, or one built from counts and ``tau``."""
    if isinstance(spec, ProblemSpec):
        if tau is not None or fields:
            given = sorted(fields) + (["tau"] if tau is not None else [])
            raise InvalidInputError(f"{', '.join(given)} belong(s) to the spec: give them to "
                                    "ProblemSpec, or pass the counts instead of a spec")
        return spec
    if isinstance(spec, (str, bytes, Mapping)) or not isinstance(spec, (Sequence, np.ndarray)):
        raise InvalidInputError(f"spec must be a ProblemSpec or a sequence of class counts, "
                                f"got {type(spec).__name__}")
    if tau is None:
        raise InvalidInputError("solve(counts, tau=...) needs the temperature tau")
    unknown = sorted(set(fields) - {"loss", "relaxation", "batches", "names"})
    if unknown:
        raise InvalidInputError(f"solve() got unexpected keyword(s) {unknown}")
    return ProblemSpec(spec, tau, **fields)


CLASS_FALLBACK_MAX = 200
"""With ``level="auto"``, a group-level answer that is not certified is tried again at
class level when there are at most this many classes."""


def _solve_model(spec: ProblemSpec, model: Model, solver: str, options, tols, t_start,
                 threads: int | None = None):
    if solver != "auto":
        return _pipeline(spec, model, solver, options, tols, t_start, threads)
    get_backend("clarabel")  # loads the registry
    native = BACKENDS.get("native")
    if native is not None and native.available() and native.supports(model):
        res = _pipeline(spec, model, "native", options, tols, t_start, threads)
        if res.success or (res.certificate is not None and _collapse_unproven(
                model, res.certificate, res.sample_certificate, tols)):
            return res
        note = f"native solver not certified ({res.message}); "
        fallback_options = None
        limit = (options or {}).get("time_limit")
        if limit is not None:
            left = float(limit) - (time.perf_counter() - t_start)
            if left <= 0:
                return _with_message(res, note + "no time left for the clarabel fallback "
                                     f"(time limit {float(limit):g} s)")
            fallback_options = {"time_limit": left}
        log.info("native solver did not certify (%s); falling back to clarabel", res.message)
        try:
            fallback = _pipeline(spec, model, "clarabel", fallback_options, tols, t_start,
                                 threads)
        except ResourceLimitError as exc:
            return _with_message(res, note + f"clarabel fallback skipped: {exc}")
        note += "fell back to clarabel. "
        if not fallback.success and _worst(res, tols) < _worst(fallback, tols):
            # Neither certified: keep the answer with the better certificate.
            return _with_message(res, note + f"clarabel was no better ({fallback.message}); "
                                 "kept the native answer")
        return _with_message(fallback, note + fallback.message)
    return _pipeline(spec, model, "clarabel", options, tols, t_start, threads)


def _collapse_unproven(model: Model, cert, scert, tols) -> bool:
    """A class answer of a loss outside the block template that is certified over class
    Grams but not over sample Grams: collapse is what is not proven, and no other solver
    at this level can change that (its optimum is the same)."""
    return (not model.loss.block_template and not model.level.dense
            and badness(cert, tols) <= 1 < badness(scert, tols))


def _worst(res: SolveResult, tols: tuple[float, float]) -> float:
    if res.certificate is None:
        return math.inf
    return max(badness(res.certificate, tols), badness(res.sample_certificate, tols))


def _with_message(res: SolveResult, message: str) -> SolveResult:
    from dataclasses import replace

    return replace(res, message=message)
