"""Stage 4a of the pipeline: make a solver's output exactly feasible.

Conic and first-order solvers return points that violate the constraints by about their
tolerance. Only feasible points may be certified (MATH.md section 5), so every answer is
projected onto the PSD cone, rescaled to the constraint set, and finally pulled towards
the all-orthogonal geometry just enough that the smallest eigenvalue computed in floating
point is non-negative.
"""

from __future__ import annotations

import numpy as np

from ..errors import SolveFailedError
from ..levels.blocks import GramSpectrum, block_min_eig, block_spectrum, sign_vector
from ..problem.model import Model

__all__ = ["GramSpectrum", "block_min_eig", "block_spectrum", "gram_spectrum",
           "min_eigenvalue", "repair", "repaired", "sign_rounding", "sign_vector"]


def min_eigenvalue(model: Model, X: np.ndarray) -> float:
    """Smallest eigenvalue of the class (or sample) Gram matrix that ``X`` represents
    (:func:`gram_spectrum`)."""
    return gram_spectrum(model, X).min


def gram_spectrum(model: Model, X: np.ndarray) -> GramSpectrum:
    """The spectrum of the class (or sample) Gram that ``X`` represents, from one
    eigendecomposition: feasibility and rank are both read from it
    (:meth:`scconvex.levels.Level.spectrum`; O(g^3) at class and group level)."""
    return model.level.spectrum(model, X)


SIGN_ROUNDING_TOL = 1e-4
"""Largest entry distance from an answer to the geometry on one line tried as a candidate
(:func:`sign_rounding`); farther answers are not tried there."""


def sign_rounding(X: np.ndarray, tol: float = SIGN_ROUNDING_TOL) -> np.ndarray | None:
    """The geometry ``s s^T``, ``s = sign(X[0])``, when ``X`` is within ``tol`` of it.

    A loss can attain its geometry-independent lower bound on such a geometry (the
    negatives-only loss with one class of two or more samples does, the singletons
    antipodal to it); the excess is then 0, and only the exact point proves it.
    """
    X = np.asarray(X, dtype=float)
    s = np.where(X[0] < 0, -1.0, 1.0)
    S = np.outer(s, s)
    return S if np.max(np.abs(X - S)) <= tol else None


def repair(model: Model, X: np.ndarray, *, drop: float = 0.0) -> tuple[np.ndarray, float]:
    """Return a feasible version of ``X`` and how far it moved (max abs entry change)
    (:func:`repaired`, without the spectrum)."""
    return repaired(model, X, drop=drop)[:2]


def repaired(model: Model, X: np.ndarray, *,
             drop: float = 0.0) -> tuple[np.ndarray, float, GramSpectrum]:
    """Return a feasible version of ``X``, how far it moved (max abs entry change) and
    its spectrum (:func:`gram_spectrum` of the returned point, computed to show it
    feasible: callers need not decompose it again).

    Parameters
    ----------
    model : Model
    X : ndarray
        The solver's variable.
    drop : float
        Eigenvalues of the PSD part below ``drop`` times the largest are set to zero. With
        ``drop > 0`` this rounds an interior-point answer, whose spurious tiny eigenvalues
        make its certificate loose, to the low-rank point it approximates.

    Raises
    ------
    SolveFailedError
        If ``X`` has the wrong shape or non-finite entries.
    """
    X = np.asarray(X, dtype=float)
    if X.shape != (model.dim, model.dim):
        raise SolveFailedError(f"solver returned shape {X.shape}, expected "
                               f"{(model.dim, model.dim)}")
    if not np.all(np.isfinite(X)):
        raise SolveFailedError("solver returned non-finite values")
    Y = 0.5 * (X + X.T)
    spectrum = _feasible(model, Y) if drop == 0 else None
    if spectrum is not None and spectrum.min >= 0:
        # Re-projecting would only add rounding (and can move an exact optimum on the
        # boundary, e.g. two antipodal classes, off it).
        return Y, float(np.max(np.abs(Y - X))), spectrum
    if spectrum is None or spectrum.min < -NEAR_FEASIBLE:
        spectrum = None
        Y = model.level.project(model, Y, drop)
        # The extra cone of the relaxation (e.g. X >= 0); the mixing below keeps it,
        # because the all-orthogonal point lies in it.
        Y = model.relaxation.make_feasible(model, Y)
    # (Else Y is on the cone up to rounding, like a low-rank answer of the native solver
    # whose zero eigenvalue computes as -1e-15 about half the time: the mixing below is all
    # it needs, where a projection would cost a full eigendecomposition, 4 s at g = 3000.)
    # A point whose Gram (of class means, or of samples) is the identity.
    identity = model.level.orthonormal(model)
    for _ in range(5):
        if spectrum is None:
            spectrum = gram_spectrum(model, Y)
        lam = spectrum.min
        if lam >= 0:
            break
        # Mixing with the orthogonal geometry (class Gram I) lifts every eigenvalue of the
        # class Gram by t (1 - lam) and keeps the diagonal exactly 1.
        # The floor covers the rounding error of the eigenvalue computation itself.
        t = min(1.0, 2.0 * (-lam) / (1.0 - lam) + 16 * np.finfo(float).eps * model.dim)
        Y = (1.0 - t) * Y + t * identity
        spectrum = None
    if spectrum is None:
        spectrum = gram_spectrum(model, Y)
    return Y, float(np.max(np.abs(Y - X))), spectrum


NEAR_FEASIBLE = 1e-10
"""A point that meets the linear constraints and whose smallest eigenvalue computes above
``-NEAR_FEASIBLE`` is made feasible by mixing alone (:func:`repair`), without a
projection."""


def _feasible(model: Model, Y: np.ndarray) -> GramSpectrum | None:
    """The spectrum of ``Y`` when it meets the constraints other than PSD, else None."""
    fixed = model.level.fixed_diagonal(model)
    d = np.diag(Y)
    if not (np.all(d[fixed] == 1.0) and np.all(d[~fixed] <= 1.0)
            and model.relaxation.violation(model, Y) == 0.0):
        return None
    return gram_spectrum(model, Y)
