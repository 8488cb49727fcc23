"""Independent re-checking of certificate files (``scconvex verify``).

A certificate file is the JSON written by ``scconvex solve --certificate FILE``. The
verifier trusts no stored number: it rebuilds the problem from the stored spec, takes the
stored geometry (the class Gram, or the sample Gram of a sample-level solve), checks that
it is feasible, recomputes the loss and both certificates (MATH.md section 5), and compares
them with the claims.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .certify import certify
from .errors import InvalidInputError
from .model import build_model
from .repair import min_eigenvalue
from .spec import ProblemSpec

FEASIBILITY_TOL = 1e-10
"""Largest violation (negative eigenvalue, asymmetry, diagonal error) accepted as rounding."""

CLAIM_TOL = 1e-9
"""Relative agreement required between a claimed and a recomputed loss."""


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`.

    Attributes
    ----------
    ok : bool
    reasons : tuple of str
        Why verification failed (empty when ``ok``).
    loss, rel_gap, sample_rel_gap, min_eigenvalue : float
        Recomputed values (``nan`` when they could not be computed).
    tol : float
    """

    ok: bool
    reasons: tuple[str, ...]
    loss: float = math.nan
    rel_gap: float = math.nan
    sample_rel_gap: float = math.nan
    min_eigenvalue: float = math.nan
    tol: float = 1e-8
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dictionary: the fields above plus the recomputed details."""
        return {"ok": self.ok, "reasons": list(self.reasons), "loss": self.loss,
                "rel_gap": self.rel_gap, "sample_rel_gap": self.sample_rel_gap,
                "min_eigenvalue": self.min_eigenvalue, "tol": self.tol, **self.details}


def _fail(reason: str, tol: float, **kw) -> VerifyReport:
    return VerifyReport(False, (reason,), tol=tol, **kw)


def _number(data: dict, key: str) -> float:
    value = data.get(key)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"claimed {key!r} is missing or not a number")
    return float(value)


def _matrix(data: dict, key: str, size: int) -> np.ndarray:
    raw = data.get(key)
    if raw is None:
        raise InvalidInputError(f"the file has no {key!r}")
    try:
        X = np.array(raw, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{key!r} is not a numeric matrix") from None
    if X.shape != (size, size):
        raise InvalidInputError(f"{key!r} has shape {X.shape}, the spec needs "
                                f"{(size, size)}")
    if not np.all(np.isfinite(X)):
        raise InvalidInputError(f"{key!r} has non-finite entries")
    return X


def verify_data(data: dict, tol: float = 1e-8) -> VerifyReport:
    """Verify a parsed certificate (see :func:`verify`)."""
    if not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0:
        raise InvalidInputError(f"tol must be finite and > 0, got {tol!r}")
    try:
        if not isinstance(data, dict):
            raise InvalidInputError("the file does not hold a JSON object")
        spec = ProblemSpec.from_dict(data.get("spec"))
        level = data.get("level")
        if level not in ("group", "class", "sample"):
            raise InvalidInputError(f"unknown level {level!r}")
        claimed = {key: _number(data, key) for key in ("loss", "gap", "sample_gap")}
        if level == "sample":
            model = build_model(spec, "sample")
            X = _matrix(data, "sample_gram", spec.n)
        elif level == "group":
            model, X = _group_geometry(spec, data)
        else:
            model = build_model(spec, "class")
            X = _matrix(data, "class_gram", spec.k)
    except InvalidInputError as exc:
        return _fail(f"malformed certificate: {exc}", tol)
    if level == "group" and data.get("class_gram") is not None:
        # A stored class Gram must be exactly the lift of the group geometry it claims.
        try:
            M = _matrix(data, "class_gram", spec.k)
        except InvalidInputError as exc:
            return _fail(f"malformed certificate: {exc}", tol)
        lifted = X[np.ix_(model.block_of, model.block_of)]
        np.fill_diagonal(lifted, 1.0)
        if np.max(np.abs(M - lifted)) > FEASIBILITY_TOL:
            return _fail("tampered values: class_gram does not match the group geometry", tol)

    asym = float(np.max(np.abs(X - X.T)))
    fixed = np.ones(model.dim, dtype=bool) if level != "group" else model.sizes == 1
    diag = float(np.max(np.abs(np.diag(X)[fixed] - 1.0), initial=0.0))
    if asym > FEASIBILITY_TOL or diag > FEASIBILITY_TOL:
        return _fail(f"infeasible geometry: not a symmetric matrix with unit diagonal "
                     f"(asymmetry {asym:.2e}, diagonal error {diag:.2e})", tol)
    X = 0.5 * (X + X.T)
    X[np.diag_indices(model.dim)[0][fixed], np.diag_indices(model.dim)[1][fixed]] = 1.0
    lam = min_eigenvalue(model, X)
    if lam < -FEASIBILITY_TOL:
        return _fail(f"infeasible geometry: smallest eigenvalue {lam:.3e} < 0 "
                     f"(not positive semidefinite)", tol, min_eigenvalue=lam)
    cert, scert = certify(model, X)
    reasons = []
    scale = max(1.0, abs(cert.loss))
    if not abs(cert.loss - claimed["loss"]) <= CLAIM_TOL * scale:
        reasons.append(f"tampered values: claimed loss {claimed['loss']!r} but the geometry "
                       f"gives {cert.loss!r}")
    for name, got in (("gap", cert.gap), ("sample_gap", scert.gap)):
        # Gaps agree to rounding of the loss-sized terms they are differences of.
        if not abs(got - claimed[name]) <= CLAIM_TOL * scale + 1e-3 * abs(got):
            reasons.append(f"tampered values: claimed {name} {claimed[name]!r} but the "
                           f"geometry gives {got!r}")
    if cert.rel_gap > tol:
        reasons.append(f"gap too large: relative gap {cert.rel_gap:.3e} > {tol:.1e}")
    if scert.rel_gap > tol:
        reasons.append(f"gap too large: sample-level relative gap {scert.rel_gap:.3e} > "
                       f"{tol:.1e}")
    return VerifyReport(not reasons, tuple(reasons), cert.loss, cert.rel_gap, scert.rel_gap,
                        lam, tol, {"lower_bound": scert.lower_bound, "gap": cert.gap,
                                   "sample_gap": scert.gap, "level": level})


def _group_geometry(spec: ProblemSpec, data: dict):
    groups = data.get("groups")
    if not isinstance(groups, dict):
        raise InvalidInputError("a group-level certificate needs a 'groups' object")
    model = build_model(spec, "group")
    for key, expected in (("counts", model.block_counts), ("sizes", model.sizes),
                          ("block_of", model.block_of)):
        got = groups.get(key)
        if not isinstance(got, list) or list(got) != expected.tolist():
            raise InvalidInputError(f"groups.{key} does not match the spec's counts")
    return model, _matrix(groups, "gram", model.dim)


def verify(path: str | os.PathLike, tol: float = 1e-8) -> VerifyReport:
    """Re-check a certificate file, trusting no stored number.

    Parameters
    ----------
    path : path-like
        JSON file written by ``scconvex solve --certificate``.
    tol : float
        Largest accepted recomputed relative gap (class and sample level).

    Returns
    -------
    VerifyReport
        ``ok`` is True when the geometry is feasible, the recomputed loss and gaps agree
        with the claims, and both relative gaps are at most ``tol``; otherwise ``reasons``
        says why (infeasible geometry, tampered values, gap too large, malformed file).
    """
    try:
        with open(path) as fh:
            data = json.load(fh)
    except OSError as exc:
        return _fail(f"cannot read {os.fspath(path)!r}: {exc.strerror}", tol)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _fail(f"malformed certificate: not valid JSON ({exc})", tol)
    return verify_data(data, tol)
