"""Independent re-checking of certificate files (``scconvex verify``).

A certificate file is the JSON written by ``scconvex solve --certificate FILE``. The
verifier trusts no stored number (MATH.md section 7). From the stored spec and the stored
geometry (the group Gram, the class Gram, or the sample Gram of a sample-level solve) it
checks feasibility and recomputes the loss and both certificates (MATH.md section 5). It
accepts only when the recomputed gaps are within tolerance relative to the loss **and**
relative to the excess loss ``L - sum n_c log(n_c - 1)``, at the solved level and over all
sample Grams. Every claimed number is then compared with its recomputation; a claim that
disagrees is a rejection, but a claim that agrees adds nothing to the verdict.
See ``docs/verification.md`` for what a passing verification proves.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..checks import check_tolerance
from ..errors import InvalidInputError, ResourceLimitError
from ..files import SCHEMA_VERSION, check_json_memory, read_input
from ..levels import LEVELS, RANK_TOL, Level, same_json
from ..losses.relaxations import FACTOR_KEY, FACTOR_TOL
from ..problem.model import Model, build_model
from ..problem.spec import ProblemSpec
from .bars import CosineBars, check_claims, model_bars
from .certify import DEFAULT_EXCESS_TOL, DEFAULT_GAP_TOL, Certificate, certify
from .measures import MEASURES_VERSION, BlockGeometry, summary
from .repair import gram_spectrum

FEASIBILITY_TOL = 1e-10
"""Largest violation (negative eigenvalue, asymmetry, diagonal error) accepted as rounding;
also the agreement required of a claimed ``min_eigenvalue`` and of a stored class Gram
with the geometry it is derived from."""

LOSS_RTOL = 1e-12
"""Relative agreement required of loss-sized claims (``loss``, ``lower_bound``,
``sample_lower_bound``) with their recomputation: float64 rounding of a sum of logarithms,
and nothing more. Below this they carry no information; the geometry is judged by the
excess-relative gap."""

EXCESS_RTOL = 1e-9
"""Relative agreement required of the claimed ``excess_loss`` (computed without
cancellation at class and group level)."""

GAP_RTOL = 1e-6
"""Relative agreement required of claimed gaps (they are differences, so less accurate)."""

GAP_FLOOR = 1e-3
"""Claimed gaps may also differ from the recomputed ones by this fraction of the tolerance
they are judged against: such a difference cannot change a verdict."""

MAX_FILE_BYTES = 256 * 2**20
"""Largest certificate file read (256 MiB, a sample-level Gram of about n = 3500)."""

CLAIMED_NUMBERS = ("loss", "excess_loss", "lower_bound", "sample_lower_bound", "gap",
                   "sample_gap", "rel_gap", "sample_rel_gap", "excess_gap",
                   "sample_excess_gap", "min_eigenvalue")
"""Claimed numbers that must be present and agree with the recomputation."""

DESCRIPTION_FIELDS = ("tau", "counts", "n", "k")
"""Top-level copies of the spec that must match it exactly."""

NOT_TRUSTED = ("solver", "message", "raw_status", "iterations", "repair_shift", "seconds",
               "timings", "rank_tol", "scconvex_version", "uniqueness.reason")
"""Fields that are reported context only: never compared and never used."""

MEASURE_RTOL = 1e-9
"""Relative agreement required of a claimed measure with its recomputation (a measure is
a short sum over the stored cosines)."""

BOUNDS_SCHEMA = 2
"""From this schema version on a file's ``cosine_bounds``, ``unique`` and
``measures.bounds`` are claims that the verifier re-derives (version 1 files held an
estimate under ``unique``, which is not read)."""

CHECKED_FIELDS = ("kind", "schema_version", "spec", "level", "status", "rank", "gap_tol",
                  "excess_tol", "measures", "cosine_bounds", "unique", "uniqueness",
                  "class_means", CLAIMED_NUMBERS, DESCRIPTION_FIELDS)
"""Top-level fields that are read or recomputed and compared (with the geometry of each
level, ``class_gram`` and the relaxation's own fields, e.g. ``nonnegative_factor``)."""

NOT_VERIFIED_KEY = "not_verified"
"""The one top-level key whose content is never checked: a file puts there what its
writer reports but ``verify`` does not recompute, so that no unchecked number sits next to
checked ones."""

LEGACY_NOT_VERIFIED = ("unique", "uniqueness")
"""Top-level fields that a file of a schema before :data:`BOUNDS_SCHEMA` holds as an
estimate: not read, and listed as not verified in the report's notes."""


def _field_names() -> frozenset[str]:
    names = set(NOT_TRUSTED) | {CLASS_GRAM_KEY} | {level.key for level in LEVELS.values()}
    for item in CHECKED_FIELDS:
        names.update((item,) if isinstance(item, str) else item)
    return frozenset(names)


def _field_reasons(data: dict, model: Model, schema: int) -> tuple[list[str], list[str]]:
    """Every top-level key is checked, context, or under :data:`NOT_VERIFIED_KEY`:
    ``(reasons, notes)``. An unknown key is a rejection: it would be a number that looks
    verified and is not."""
    known = _field_names() | set(model.relaxation.report_keys)
    unknown = sorted(key for key in data if key not in known and key != NOT_VERIFIED_KEY)
    reasons = [f"unchecked field {key!r}: verify neither recomputes it nor is it context; "
               f"a writer puts such fields under {NOT_VERIFIED_KEY!r}" for key in unknown]
    unchecked = [key for key in LEGACY_NOT_VERIFIED
                 if schema < BOUNDS_SCHEMA and data.get(key) is not None]
    extra = data.get(NOT_VERIFIED_KEY)
    if extra is not None and not isinstance(extra, dict):
        reasons.append(f"malformed certificate: {NOT_VERIFIED_KEY!r} is not an object")
    elif extra:
        unchecked += sorted(extra)
    notes = ([f"not verified (reported by the solve, never checked): {', '.join(unchecked)}"]
             if unchecked else [])
    return reasons, notes


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`.

    Attributes
    ----------
    ok : bool
        True when the recomputed certificates are within both tolerances, at the solved
        level and over all sample Grams, and every claim agrees with its recomputation.
    reasons : tuple of str
        Why verification failed (empty when ``ok``).
    level : str
        Level of the stored geometry (``""`` when the file could not be read).
    loss, excess_loss : float
        Recomputed loss and excess loss ``L - sum n_c log(n_c - 1)``.
    lower_bound, sample_lower_bound : float
        Recomputed certified lower bounds (solved level; all sample Grams).
    rel_gap, sample_rel_gap : float
        Recomputed gaps relative to the loss.
    excess_gap, sample_excess_gap : float
        Recomputed gaps relative to the excess loss.
    min_eigenvalue : float
        Smallest eigenvalue of the stored class (or sample) Gram.
    rank : int
        Numerical rank of the stored geometry (-1 when not computed).
    tol, excess_tol : float
        Tolerances the gaps were judged against.
    loss_name, relaxation : str
        The problem's loss and relaxation, from its spec (``""`` when unread).
    batches : int or None
        Number of batches of a batch-wise loss; None for the full-batch loss.
    details : dict
        Absolute gaps ``gap`` and ``sample_gap``.
    nonnegative_dimension : int or None
        ``dnn`` relaxation: the dimension of the stored non-negative factor ``H``, checked
        (``H >= 0``, ``H H^T`` equal to the geometry, and ``H H^T`` within both tolerances
        of the certified lower bound): non-negative (ReLU) features in that dimension
        attain the optimum. None when the file stores no factor (then only the DNN lower
        bound is proven, see :attr:`notes`) or for other relaxations.
    notes : tuple of str
        What a passing verification does not prove about this file.
    """

    ok: bool
    reasons: tuple[str, ...]
    level: str = ""
    loss: float = math.nan
    excess_loss: float = math.nan
    lower_bound: float = math.nan
    sample_lower_bound: float = math.nan
    rel_gap: float = math.nan
    sample_rel_gap: float = math.nan
    excess_gap: float = math.nan
    sample_excess_gap: float = math.nan
    min_eigenvalue: float = math.nan
    rank: int = -1
    tol: float = DEFAULT_GAP_TOL
    excess_tol: float = DEFAULT_EXCESS_TOL
    loss_name: str = ""
    relaxation: str = ""
    batches: int | None = None
    details: dict = field(default_factory=dict)
    nonnegative_dimension: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def variant(self) -> str:
        """The problem in words: ``"sc loss, elliptope relaxation, full batch"``."""
        if not self.loss_name:
            return "problem not read"
        batches = "full batch" if self.batches is None else f"{self.batches} batches"
        return f"{self.loss_name} loss, {self.relaxation} relaxation, {batches}"

    def to_dict(self) -> dict:
        """JSON-ready dictionary: the fields above plus the recomputed details."""
        return {"ok": self.ok, "reasons": list(self.reasons), "notes": list(self.notes),
                "nonnegative_dimension": self.nonnegative_dimension, "level": self.level,
                "loss": self.loss, "excess_loss": self.excess_loss,
                "lower_bound": self.lower_bound, "sample_lower_bound": self.sample_lower_bound,
                "rel_gap": self.rel_gap, "sample_rel_gap": self.sample_rel_gap,
                "excess_gap": self.excess_gap, "sample_excess_gap": self.sample_excess_gap,
                "min_eigenvalue": self.min_eigenvalue, "rank": self.rank, "tol": self.tol,
                "excess_tol": self.excess_tol, "loss_name": self.loss_name,
                "relaxation": self.relaxation, "batches": self.batches, **self.details}


def _fail(reason: str, tol: float, excess_tol: float, **kw) -> VerifyReport:
    return VerifyReport(False, (reason,), tol=tol, excess_tol=excess_tol, **kw)


def _number(data: dict, key: str) -> float:
    value = data.get(key)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"claimed {key!r} is missing or not a number")
    try:
        return float(value)
    except OverflowError:
        raise InvalidInputError(f"claimed {key!r} is out of range") from None


def _matrix(data: dict, key: str, size: int) -> np.ndarray:
    raw = data.get(key)
    if raw is None:
        raise InvalidInputError(f"the file has no {key!r}")
    # numpy would read true as 1.0 and "0.5" as 0.5: a geometry is numbers only.
    if isinstance(raw, np.ndarray) and raw.dtype.kind not in "fiu" or isinstance(
            raw, (list, tuple)) and not all(map(_number_row, raw)):
        raise InvalidInputError(f"{key!r} is not a list of rows of numbers")
    try:
        X = np.array(raw, dtype=float)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise InvalidInputError(f"{key!r} is not a numeric matrix") from None
    if X.shape != (size, size):
        raise InvalidInputError(f"{key!r} has shape {X.shape}, the spec needs "
                                f"{(size, size)}")
    if not np.all(np.isfinite(X)):
        raise InvalidInputError(f"{key!r} has non-finite entries")
    return X


_NUMBER_TYPES = frozenset((int, float))
"""Python types of JSON numbers (``bool`` is a subclass of ``int`` but not listed)."""


def _number_row(row) -> bool:
    """True for a list of numbers (not booleans, not strings); fast for JSON floats."""
    if not isinstance(row, (list, tuple, np.ndarray)):
        return False
    return _NUMBER_TYPES.issuperset(map(type, row)) or all(
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, (bool, np.bool_)) for x in row)


def _unique_keys(pairs: list) -> dict:
    """``object_pairs_hook`` that refuses duplicate keys: JSON readers disagree on which
    of two values they keep, so a file with both could show one and verify the other."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise InvalidInputError(f"duplicate key {dup!r}")
    return out


@dataclass(frozen=True)
class _Recomputed:
    """Everything the verdict rests on, recomputed from the stored geometry."""

    model: Model
    X: np.ndarray
    cert: Certificate
    scert: Certificate
    lam: float
    rank: int


def verify_data(data: dict, tol: float = DEFAULT_GAP_TOL,
                excess_tol: float = DEFAULT_EXCESS_TOL) -> VerifyReport:
    """Verify a parsed certificate (see :func:`verify`)."""
    tol = check_tolerance(tol, "tol")
    excess_tol = check_tolerance(excess_tol, "excess_tol")
    variant: dict = {}  # the spec's loss, relaxation and batches, once it is read
    try:
        if not isinstance(data, dict):
            raise InvalidInputError("the file does not hold a JSON object")
        if data.get("kind", "scconvex.solve") != "scconvex.solve":
            raise InvalidInputError(f"kind {data.get('kind')!r} is not a solve certificate")
        schema = data.get("schema_version", SCHEMA_VERSION)
        if isinstance(schema, bool) or not isinstance(schema, int) \
                or not 1 <= schema <= SCHEMA_VERSION:
            raise InvalidInputError(f"schema_version {schema!r} is not one this version "
                                    f"reads (up to {SCHEMA_VERSION})")
        spec = ProblemSpec.from_dict(data.get("spec"))
        variant = {"loss_name": spec.loss, "relaxation": spec.relaxation,
                   "batches": None if spec.batches is None else len(spec.batches)}
        name = data.get("level")
        if not isinstance(name, str) or name not in LEVELS:
            raise InvalidInputError(f"unknown level {name!r}")
        level = LEVELS[name]
        claimed = {key: _number(data, key) for key in CLAIMED_NUMBERS}
        for key in DESCRIPTION_FIELDS + ("rank", "status"):
            if key not in data:
                raise InvalidInputError(f"the file has no {key!r}")
        model, X = _geometry(spec, level, data)
    except InvalidInputError as exc:
        return _fail(f"malformed certificate: {exc}", tol, excess_tol, **variant)

    asym = float(np.max(np.abs(X - X.T)))
    fixed = level.fixed_diagonal(model)
    diag = float(np.max(np.abs(np.diag(X)[fixed] - 1.0), initial=0.0))
    if asym > FEASIBILITY_TOL or diag > FEASIBILITY_TOL:
        return _fail(f"infeasible geometry: not a symmetric matrix with unit diagonal "
                     f"(asymmetry {asym:.2e}, diagonal error {diag:.2e})", tol, excess_tol,
                     level=level.name, **variant)
    stored = X
    X = 0.5 * (X + X.T)
    idx = np.flatnonzero(fixed)
    X[idx, idx] = 1.0
    spectrum = gram_spectrum(model, X)
    lam = spectrum.min
    if lam < -FEASIBILITY_TOL:
        return _fail(f"infeasible geometry: smallest eigenvalue {lam:.3e} < 0 "
                     f"(not positive semidefinite)", tol, excess_tol, level=level.name,
                     min_eigenvalue=lam, **variant)
    violation = model.relaxation.violation(model, X)
    if violation > FEASIBILITY_TOL:
        return _fail(f"infeasible geometry: outside the {spec.relaxation!r} relaxation "
                     f"(violation {violation:.3e})", tol, excess_tol, level=level.name,
                     min_eigenvalue=lam, **variant)
    reasons, field_notes = _field_reasons(data, model, schema)
    reasons += _derived_gram(data, model, X)
    cert, scert = certify(model, X)
    rec = _Recomputed(model, X, cert, scert, lam, spectrum.rank(RANK_TOL))
    reasons += _check_claims(data, claimed, spec, rec, tol, excess_tol)
    # Bars from a feasible centre, measured from the stored numbers (verify accepts a
    # violation of 1e-10 as rounding; the bars must not).
    # Both schedules of the box argument, the tighter proof per entry: a file written by
    # either (or by an earlier version, which ran the thorough one) verifies.
    bars = model_bars(model, X, cert, scert, min_eigenvalue=lam, centre=stored,
                      tightest=True)
    reasons += _check_geometry_claims(data, schema, rec, bars)
    gap_reasons = _check_gaps(rec, tol, excess_tol)
    reasons += _check_status(data, rec, gap_reasons) + gap_reasons
    factor_reasons, dimension, notes = _check_factor(data, rec, tol, excess_tol)
    reasons += factor_reasons
    return VerifyReport(
        ok=not reasons, reasons=tuple(reasons), level=level.name, loss=cert.loss,
        excess_loss=cert.excess_loss, lower_bound=cert.lower_bound,
        sample_lower_bound=scert.lower_bound, rel_gap=cert.rel_gap,
        sample_rel_gap=scert.rel_gap, excess_gap=cert.excess_gap,
        sample_excess_gap=scert.excess_gap, min_eigenvalue=lam, rank=rec.rank, tol=tol,
        excess_tol=excess_tol, details={
            "gap": cert.gap, "sample_gap": scert.gap,
            "unique": None if bars is None else bars.unique,
            "max_half_width": math.nan if bars is None else bars.max_half_width,
            "collapse_delta": math.nan if bars is None else bars.collapse_delta},
        nonnegative_dimension=dimension, notes=tuple(notes + field_notes), **variant)


def _geometry(spec: ProblemSpec, level: Level, data: dict) -> tuple[Model, np.ndarray]:
    """The model of the stored level and its stored variable."""
    for other in LEVELS.values():
        # The class Gram may accompany a finer or coarser geometry (as derived data); any
        # other level's geometry may not.
        if (other is not level and other.key != CLASS_GRAM_KEY
                and data.get(other.key) is not None):
            raise InvalidInputError(f"level {level.name!r} but the file holds a "
                                    f"{other.name}-level geometry ({other.key!r})")
    model = build_model(spec, level)
    stored = level.stored_partition(spec, data)
    if stored is not None:
        model = Model(spec, level, *stored)
    return model, level.load(model, data, _matrix)


CLASS_GRAM_KEY = "class_gram"
"""Where a file stores the ``k x k`` class Gram (the class level's geometry, and derived
data at the other levels)."""


def _derived_gram(data: dict, model: Model, X: np.ndarray) -> list[str]:
    """A stored class Gram derived from the geometry (group, sample level) must equal it,
    and so must the class means a sample-level file stores."""
    reasons = _class_means(data, model, X)
    if model.level.key == CLASS_GRAM_KEY or data.get(CLASS_GRAM_KEY) is None:
        return reasons
    try:
        M = _matrix(data, CLASS_GRAM_KEY, model.spec.k)
    except InvalidInputError as exc:
        return reasons + [f"malformed certificate: {exc}"]
    if np.max(np.abs(M - model.level.class_gram(model, X))) > FEASIBILITY_TOL:
        return reasons + [f"tampered values: class_gram does not match the "
                          f"{model.level.name} geometry"]
    return reasons


def _class_means(data: dict, model: Model, X: np.ndarray) -> list[str]:
    """``class_means`` (sample level): the cosines between the class means and their
    lengths, recomputed from the sample Gram (NaN where a mean has length 0)."""
    stored = data.get("class_means")
    if stored is None:
        return []
    k = model.spec.k
    if not model.level.dense:
        return [f"malformed certificate: class_means belong to a sample-level file, not "
                f"a {model.level.name}-level one"]
    if not isinstance(stored, dict) or set(stored) != {"cosines", "norms"}:
        return ["malformed certificate: class_means must hold 'cosines' and 'norms'"]
    cosines, norms = model.level.class_means(model, X)
    raw = stored["cosines"]
    rows = ([[math.nan if x == "nan" else x for x in row] for row in raw]
            if isinstance(raw, list) and all(isinstance(row, list) for row in raw) else None)
    if rows is None or not all(map(_number_row, rows + [stored["norms"]])):
        return ["malformed certificate: class_means is not numeric"]
    cos_claim = np.array(rows, dtype=float)
    norm_claim = np.array(stored["norms"], dtype=float)
    if norm_claim.shape != (k,) or cos_claim.shape != (k, k):
        return ["malformed certificate: class_means has the wrong shape"]
    same_nan = np.array_equal(np.isnan(cos_claim), np.isnan(cosines))
    both = ~np.isnan(cosines)
    if not (same_nan and np.all(np.abs(norm_claim - norms) <= FEASIBILITY_TOL)
            and np.all(np.abs(cos_claim[both] - cosines[both]) <= FEASIBILITY_TOL)):
        return ["tampered values: class_means do not match the sample geometry"]
    return []


def _close(claim: float, value: float, slack: float) -> bool:
    if not (math.isfinite(claim) and math.isfinite(value)):
        return claim == value or (math.isnan(claim) and math.isnan(value))
    return abs(claim - value) <= slack


def _check_claims(data: dict, claimed: dict, spec: ProblemSpec, rec: _Recomputed,
                  tol: float, excess_tol: float) -> list[str]:
    """Compare every claim with the recomputation; each mismatch is one reason."""
    reasons = []
    expected = {"tau": spec.tau, "counts": list(spec.counts), "n": spec.n, "k": spec.k}
    for key, value in expected.items():
        if not same_json(data[key], value):
            reasons.append(f"tampered values: top-level {key} {data[key]!r} does not match "
                           f"the spec ({value!r})")
    cert, scert = rec.cert, rec.scert
    loss_slack = LOSS_RTOL * max(1.0, abs(cert.loss))
    # The excess is formed without cancellation except in the dense sample-level form.
    excess_floor = loss_slack if rec.model.level.dense else 0.0

    def gap_slack(value: float, judged_against: float) -> float:
        return GAP_RTOL * abs(value) + GAP_FLOOR * judged_against

    def allowed_gap(c: Certificate) -> float:
        return min(tol * abs(c.loss), excess_tol * max(c.excess_loss, 0.0))

    # claim -> (recomputed value, largest accepted difference)
    checks = {
        "loss": (cert.loss, loss_slack),
        "lower_bound": (cert.lower_bound, loss_slack),
        "sample_lower_bound": (scert.lower_bound, loss_slack),
        "excess_loss": (cert.excess_loss, EXCESS_RTOL * abs(cert.excess_loss) + excess_floor),
        "gap": (cert.gap, gap_slack(cert.gap, allowed_gap(cert))),
        "sample_gap": (scert.gap, gap_slack(scert.gap, allowed_gap(scert))),
        "rel_gap": (cert.rel_gap, gap_slack(cert.rel_gap, tol)),
        "sample_rel_gap": (scert.rel_gap, gap_slack(scert.rel_gap, tol)),
        "excess_gap": (cert.excess_gap, gap_slack(cert.excess_gap, excess_tol)),
        "sample_excess_gap": (scert.excess_gap, gap_slack(scert.excess_gap, excess_tol)),
        "min_eigenvalue": (rec.lam, FEASIBILITY_TOL),
    }
    for key in CLAIMED_NUMBERS:
        value, slack = checks[key]
        if key.endswith("lower_bound"):
            c = cert if key == "lower_bound" else scert
            reasons += _lower_bound_reasons(key, claimed[key], value, slack, c,
                                            gap_slack(c.gap, allowed_gap(c)))
        elif key in ZERO_EXACT and claimed[key] == 0 and value != 0:
            reasons.append(f"tampered values: claimed {key} 0 but the geometry gives "
                           f"{value!r} (a gap of exactly 0 must recompute to 0)")
        elif not _close(claimed[key], value, slack):
            reasons.append(f"tampered values: claimed {key} {claimed[key]!r} but the "
                           f"geometry gives {value!r}")
    rank = data["rank"]
    if isinstance(rank, bool) or not isinstance(rank, int) or rank != rec.rank:
        reasons.append(f"tampered values: claimed rank {rank!r} but the geometry has "
                       f"rank {rec.rank}")
    return reasons


def _check_geometry_claims(data: dict, schema: int, rec: _Recomputed,
                           bars: CosineBars | None) -> list[str]:
    """The claims about the optimal geometry: the bars and the uniqueness proof (from
    :data:`BOUNDS_SCHEMA` on), and the measures with their proven intervals."""
    reasons = []
    claimed = data.get("cosine_bounds")
    if schema < BOUNDS_SCHEMA:
        # Bars arrived with schema 2: a version 1 file that carries them would have them
        # shown unchecked (only the old estimate under "unique" is left unread).
        if claimed is not None:
            reasons.append(f"malformed certificate: cosine_bounds in a schema {schema} file "
                           f"(bars are claims from schema {BOUNDS_SCHEMA} on)")
    else:
        unique = data.get("unique")
        if unique is not None and not isinstance(unique, bool):
            reasons.append(f"malformed certificate: unique {unique!r} is not a boolean")
            unique = None
        stated = data.get("uniqueness")
        if isinstance(stated, dict) and stated.get("unique") != unique:
            reasons.append("tampered values: uniqueness.unique differs from unique")
        reasons += check_claims(claimed, bars, unique)
        if isinstance(claimed, dict) and bars is not None:
            reasons += _check_bars_context(claimed, rec, bars)
    reasons += _check_measures(data.get("measures"), schema, rec, bars)
    return reasons


def _check_bars_context(claimed: dict, rec: _Recomputed, bars: CosineBars) -> list[str]:
    """The level and the gap a file's ``cosine_bounds`` say they were derived from."""
    reasons = []
    level = CLASS_LEVEL_NAME if rec.model.level.dense else rec.model.level.name
    if claimed.get("level") != level:
        reasons.append(f"tampered values: cosine_bounds.level {claimed.get('level')!r} is "
                       f"not the level of the bars ({level!r})")
    try:
        gap = _number(claimed, "excess_gap")
    except InvalidInputError:
        return reasons + ["malformed certificate: cosine_bounds.excess_gap is missing or "
                          "not a number"]
    slack = GAP_RTOL * abs(bars.excess_gap) + GAP_FLOOR * DEFAULT_EXCESS_TOL
    if not _close(gap, bars.excess_gap, slack):
        reasons.append(f"tampered values: claimed cosine_bounds.excess_gap {gap!r} but the "
                       f"bars are derived from {bars.excess_gap!r}")
    return reasons


CLASS_LEVEL_NAME = "class"
"""The level of the bars of a dense (sample-level) answer: those of its class Gram."""


def _check_measures(claimed, schema: int, rec: _Recomputed,
                    bars: CosineBars | None) -> list[str]:
    """Every claimed measure must equal its recomputation from the stored geometry, and
    claimed intervals of the optimum's measures must contain the proven ones."""
    if claimed is None:
        return []
    if not isinstance(claimed, dict):
        return ["malformed certificate: measures is not an object"]
    model = rec.model
    if model.level.dense:
        # The cosines between the class means (the block means of G are not, unless G is
        # collapsed), as the writer's measures are (measures.geometry_of).
        M = model.level.class_means(model, rec.X)[0]
        geo = BlockGeometry(M, np.ones(model.spec.k, dtype=int), np.arange(model.spec.k))
    else:
        geo = BlockGeometry(rec.X, np.asarray(model.sizes), np.asarray(model.block_of))
    proven = None if bars is None else (bars.lower, bars.upper)
    # Files written before measures_version existed hold the definitions of version 1.
    version = MEASURES_VERSION if "measures_version" in claimed else 1
    want = summary(geo, counts=model.spec.counts, rank=rec.rank, bounds=proven,
                   version=version)
    reasons = []
    bounds = claimed.get("bounds")
    for key in claimed:
        if key not in want:
            reasons.append(f"malformed certificate: unknown measure {key!r}")
    for key, value in want.items():
        if key == "bounds":
            continue
        if key not in claimed:
            reasons.append(f"malformed certificate: measure {key!r} is missing")
        elif not _same_measure(claimed[key], value):
            reasons.append(f"tampered values: claimed measure {key} {claimed[key]!r} but "
                           f"the geometry gives {value!r}")
    if schema < BOUNDS_SCHEMA and bounds is not None:
        reasons.append(f"malformed certificate: measures.bounds in a schema {schema} file "
                       f"(intervals are claims from schema {BOUNDS_SCHEMA} on)")
    elif bounds is not None:
        if want["bounds"] is None:
            reasons.append("claimed measures.bounds, but no bars are proven for this file")
        elif not isinstance(bounds, dict):
            reasons.append("malformed certificate: measures.bounds is not an object")
        else:
            for key in bounds:
                if key not in want["bounds"]:
                    reasons.append(f"malformed certificate: unknown measures.bounds.{key}")
            for key, (lo, hi) in want["bounds"].items():
                got = bounds.get(key)
                try:
                    c_lo, c_hi = float(got[0]), float(got[1])
                except (TypeError, ValueError, IndexError, KeyError):
                    reasons.append(f"malformed certificate: measures.bounds.{key}")
                    continue
                # The intervals are rounded outwards by 1e-12: a claim inside that margin
                # still contains the exact bound.
                if not (c_lo <= lo + 1e-12 and c_hi >= hi - 1e-12) and not (
                        math.isnan(lo) and math.isnan(c_lo)):
                    reasons.append(f"tampered values: claimed interval of measure {key} "
                                   f"[{c_lo!r}, {c_hi!r}] is narrower than the proven "
                                   f"[{lo!r}, {hi!r}]")
    return reasons


def _same_measure(claim, value) -> bool:
    """A claimed measure against its recomputation: numbers to :data:`MEASURE_RTOL`
    (nan as "nan"), integers and None exactly, lists elementwise."""
    if isinstance(value, list):
        return (isinstance(claim, list) and len(claim) == len(value)
                and all(map(_same_measure, claim, value)))
    if value is None or isinstance(value, int):
        return claim == value and type(claim) is type(value)
    if isinstance(claim, str) and claim in ("nan", "inf", "-inf"):
        claim = float(claim)
    if isinstance(claim, bool) or not isinstance(claim, (int, float)):
        return False
    if math.isnan(value):
        return math.isnan(claim)
    return abs(claim - value) <= MEASURE_RTOL * max(1.0, abs(value))


ZERO_EXACT = ("gap", "sample_gap", "rel_gap", "sample_rel_gap", "excess_gap",
              "sample_excess_gap")
"""Claims compared exactly when they are 0: a zero gap says the certificate is exact,
which the rounding allowance of a gap claim (a thousandth of its tolerance) would let
any small recomputed gap pass for."""


def _lower_bound_reasons(key: str, claim: float, value: float, slack: float,
                         cert: Certificate, excess_slack: float) -> list[str]:
    """A claimed lower bound: never above the loss of the stored geometry (which no
    optimum exceeds), and above the recomputed bound by no more than the loss rounding
    **and** a thousandth of the allowed gap (at small tau the loss is ~1e20 times the
    excess, so a loss-relative slack alone lets the bound claim far more than the
    geometry shows)."""
    where = f"over {cert.level} Grams"
    if math.isfinite(cert.loss) and claim > cert.loss:
        return [f"tampered values: claimed {key} {claim!r} exceeds the certified lower "
                f"bound {value!r} {where}, and even the loss {cert.loss!r} of the stored "
                f"geometry, an upper bound on the optimum"]
    if claim > value + min(slack, excess_slack):
        return [f"tampered values: claimed {key} {claim!r} exceeds the certified lower "
                f"bound {value!r} {where}"]
    if not _close(claim, value, slack):
        return [f"tampered values: claimed {key} {claim!r} but the geometry gives "
                f"{value!r}"]
    return []


def _check_gaps(rec: _Recomputed, tol: float, excess_tol: float) -> list[str]:
    """The verdict: both recomputed certificates within both tolerances."""
    reasons = []
    if not math.isfinite(rec.cert.loss):
        reasons.append(f"the loss of the stored geometry is {rec.cert.loss!r}")
    for cert in dict.fromkeys((rec.cert, rec.scert)):  # one certificate at sample level
        where = f"over {cert.level} Grams"
        if not cert.rel_gap <= tol:
            reasons.append(f"gap too large: relative gap {cert.rel_gap:.3e} {where} > "
                           f"{tol:.1e}")
        if cert.excess_gap == math.inf:
            reasons.append(f"gap too large: the gap relative to the excess loss {where} is "
                           f"not bounded (the excess is not resolved in float64 at this "
                           f"tau; class and group level resolve it)")
        elif not cert.excess_gap <= excess_tol:
            reasons.append(f"gap too large: gap relative to the excess loss "
                           f"{cert.excess_gap:.3e} {where} > {excess_tol:.1e}")
    return reasons


def _check_factor(data: dict, rec: _Recomputed, tol: float, excess_tol: float
                  ) -> tuple[list[str], int | None, list[str]]:
    """The non-negative factor a ``dnn`` file stores: ``(reasons, dimension, notes)``.

    A stored factor ``H`` must be non-negative, reproduce the geometry (``H H^T`` within
    ``FACTOR_TOL`` per entry, unit rows) and claim its own dimension; the Gram of its
    unit-scaled rows, a point that non-negative features attain exactly, must be within
    both tolerances of the certified lower bounds (its loss is recomputed). A file without
    a factor proves the DNN lower bound only, and the report says so.
    """
    model = rec.model
    relaxation = model.relaxation
    if FACTOR_KEY not in relaxation.report_keys:
        return [], None, []
    try:
        factor = relaxation.load_factor(model, data)
    except InvalidInputError as exc:
        return [f"malformed certificate: {exc}"], None, []
    if factor is None:
        return [], None, [
            "non-negative (ReLU) features not proven: the file stores no non-negative "
            "factor of its geometry, so only the DNN lower bound is proven (a doubly "
            "non-negative Gram need not be the Gram of non-negative features)"]
    reasons = []
    entry = data[FACTOR_KEY]
    if factor.min_entry < 0:
        reasons.append(f"tampered values: {FACTOR_KEY} has a negative entry "
                       f"({factor.min_entry:.3e}): not the features of a ReLU")
    X = rec.X
    residual = factor.residual(X)
    if not residual <= FACTOR_TOL:
        reasons.append(f"tampered values: {FACTOR_KEY} does not reproduce the geometry "
                       f"(|H H^T - X| or a feature's norm off by {residual:.3e} > "
                       f"{FACTOR_TOL:.0e})")
    claimed = entry.get("residual")
    if isinstance(claimed, bool) or not isinstance(claimed, (int, float)) or not _close(
            float(claimed), residual, 1e-12 + GAP_RTOL * residual):
        reasons.append(f"tampered values: claimed {FACTOR_KEY}.residual {claimed!r} but the "
                       f"factor gives {residual!r}")
    claim = entry.get("dimension")
    if isinstance(claim, bool) or claim != factor.dimension:
        reasons.append(f"tampered values: claimed {FACTOR_KEY}.dimension {claim!r} but the "
                       f"factor uses {factor.dimension}")
    if reasons:
        return reasons, None, []
    fcert, fscert = certify(model, factor.gram())
    for own, cert in ((fcert, rec.cert), (fscert, rec.scert)):
        # The factor's Gram against the bound certified at the stored geometry; the
        # excess difference is formed from the two excesses (no cancellation).
        gap = max((own.excess_loss - cert.excess_loss) + cert.gap, 0.0)
        rel = gap / abs(own.loss) if own.loss else (0.0 if gap == 0 else math.inf)
        ex = (0.0 if gap == 0 else gap / own.excess_loss if own.excess_loss > 0
              else math.inf)
        if not (rel <= tol and ex <= excess_tol):
            reasons.append(f"the Gram of {FACTOR_KEY} is not certified: its loss is "
                           f"{gap:.3e} above the lower bound over {cert.level} Grams "
                           f"(relative {rel:.2e}, to the excess {ex:.2e})")
    return reasons, (None if reasons else factor.dimension), []


def _check_status(data: dict, rec: _Recomputed, gap_reasons: list[str]) -> list[str]:
    """Only an answer its own solve called optimal can verify, and only if it certifies."""
    status = data["status"]
    if status != "optimal":
        return [f"the file's status is {status!r}: the solve that wrote it did not "
                f"certify this answer"]
    reasons = []
    if gap_reasons:
        reasons.append("claimed status 'optimal' is not certified by the stored geometry")
    for key, attr in (("gap_tol", "rel_gap"), ("excess_tol", "excess_gap")):
        if key not in data:
            continue
        try:
            stated = _number(data, key)
        except InvalidInputError as exc:
            return reasons + [f"malformed certificate: {exc}"]
        worst = max(getattr(rec.cert, attr), getattr(rec.scert, attr))
        if not worst <= stated * (1 + GAP_RTOL):
            reasons.append(f"claimed status 'optimal' does not hold under the file's own "
                           f"{key} {stated:.1e} (recomputed {worst:.3e})")
    return reasons


def _file_reason(message: str) -> str:
    """A reason of :func:`verify` from an input error (without its ``certificate:``)."""
    text = message.removeprefix("certificate: ")
    return text if text.startswith("cannot read") else f"malformed certificate: {text}"


def verify(path: str | os.PathLike, tol: float = DEFAULT_GAP_TOL,
           excess_tol: float = DEFAULT_EXCESS_TOL) -> VerifyReport:
    """Re-check a certificate file, trusting no stored number.

    Parameters
    ----------
    path : path-like
        JSON file written by ``scconvex solve --certificate`` (at most
        :data:`MAX_FILE_BYTES`).
    tol : float, default 1e-6
        Largest accepted recomputed gap relative to the loss, at the solved level and over
        all sample Grams (the default is ``solve``'s ``gap_tol``).
    excess_tol : float, default 1e-3
        Largest accepted recomputed gap relative to the excess loss
        ``L - sum n_c log(n_c - 1)`` (the default is ``solve``'s ``excess_tol``). This is
        what pins down the geometry at small ``tau``.

    Returns
    -------
    VerifyReport
        ``ok`` is True when the stored geometry is feasible, its recomputed certificates
        are within both tolerances, the file's status is ``"optimal"`` and every claimed
        number agrees with its recomputation; otherwise ``reasons`` says why (infeasible
        geometry, tampered values, status, gap too large, malformed
        file).

    Raises
    ------
    InvalidInputError
        If a tolerance is not a finite number > 0.

    Examples
    --------
    >>> import json, os, tempfile
    >>> from scconvex import ProblemSpec, solve
    >>> data = solve(ProblemSpec((5, 4, 3), tau=0.5)).to_dict()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "c.json")
    ...     with open(path, "w") as fh:
    ...         json.dump(data, fh)
    ...     verify(path).ok
    True
    """
    tol = check_tolerance(tol, "tol")
    excess_tol = check_tolerance(excess_tol, "excess_tol")
    try:
        # A FIFO, a device or a directory is refused without blocking; a large file
        # without reading it; one whose structure would cost far more memory than a
        # certificate of its size (or more than is available) without parsing it.
        raw = read_input(path, "certificate", MAX_FILE_BYTES)
        check_json_memory(raw, f"{os.fspath(path)!r}")
    except ResourceLimitError as exc:
        return _fail(f"cannot check it here: {exc}", tol, excess_tol)
    except InvalidInputError as exc:
        return _fail(_file_reason(str(exc)), tol, excess_tol)
    try:
        data = json.loads(raw, object_pairs_hook=_unique_keys)
    except InvalidInputError as exc:
        return _fail(f"malformed certificate: {exc}", tol, excess_tol)
    except RecursionError:
        return _fail("malformed certificate: JSON nested too deeply", tol, excess_tol)
    except ValueError as exc:  # includes JSONDecodeError, UnicodeDecodeError, huge integers
        return _fail(f"malformed certificate: not valid JSON ({exc})", tol, excess_tol)
    return verify_data(data, tol, excess_tol)
