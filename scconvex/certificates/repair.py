"""Stage 4a of the pipeline: make a solver's output exactly feasible.

Conic and first-order solvers return points that violate the constraints by about their
tolerance. Only feasible points may be certified (MATH.md section 5), so every answer is
projected onto the PSD cone, rescaled to the constraint set, and finally pulled towards
the all-orthogonal geometry just enough that the smallest eigenvalue computed in floating
point is non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SolveFailedError
from ..problem.model import Model, block_gram, from_block_gram


def min_eigenvalue(model: Model, X: np.ndarray) -> float:
    """Smallest eigenvalue of the class (or sample) Gram matrix that ``X`` represents
    (:func:`gram_spectrum`)."""
    return gram_spectrum(model, X).min


@dataclass(frozen=True, eq=False)
class GramSpectrum:
    """Eigenvalues of the class (or sample) Gram matrix that a model variable represents.

    Attributes
    ----------
    values : ndarray of float
        Distinct computed eigenvalues (not sorted).
    multiplicity : ndarray of int
        How many times each occurs.
    """

    values: np.ndarray
    multiplicity: np.ndarray

    @property
    def min(self) -> float:
        """The smallest eigenvalue (feasibility: >= 0)."""
        return float(np.min(self.values))

    def rank(self, tol: float) -> int:
        """Eigenvalues above ``tol`` times the largest, with multiplicity (the rule of
        :func:`scconvex.features.factor.numerical_rank`)."""
        top = max(float(np.max(self.values)), 0.0)
        return int(np.sum(self.multiplicity[self.values > tol * top]))


def gram_spectrum(model: Model, X: np.ndarray) -> GramSpectrum:
    """The spectrum of the class (or sample) Gram that ``X`` represents, from one
    eigendecomposition: feasibility and rank are both read from it.

    At class and group level it is computed from the block structure in O(g^3): the
    class Gram has eigenvalue ``1 - a_p`` on zero-sum vectors of each block, and the
    eigenvalues of ``Q`` (:func:`scconvex.problem.model.block_gram`). The geometry on one line
    (:func:`sign_vector`) has the exact spectrum ``{0, side}``; an eigensolver may say
    -1e-16 for its 0.
    """
    if sign_vector(X) is not None:
        side = model.spec.n if model.level == "sample" else model.spec.k
        if side == 1:
            return GramSpectrum(np.ones(1), np.ones(1, dtype=int))
        return GramSpectrum(np.array([0.0, float(side)]), np.array([side - 1, 1]))
    if model.level == "sample":
        lam = np.linalg.eigvalsh(X)
        return GramSpectrum(lam, np.ones(lam.size, dtype=int))
    return GramSpectrum(*block_spectrum(np.ones(model.dim), np.diag(X), X, model.sizes))


def sign_vector(X: np.ndarray) -> np.ndarray | None:
    """``s`` (entries +-1, ``s_0 = 1``) with ``X == s s^T`` exactly, or None.

    ``X`` is then a geometry with every class mean (or sample) on one line, feasible in
    exact arithmetic at every level (at group level it needs ``a_p = 1``, which ``s s^T``
    has on its diagonal). Checked in O(dim^2) by exact comparisons.
    """
    X = np.asarray(X)
    s = X[0]
    if s[0] != 1.0 or not np.all(np.abs(s) == 1.0):
        return None
    return s if np.array_equal(X, np.outer(s, s)) else None


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


def block_min_eig(diag, within, between, sizes) -> float:
    """Smallest eigenvalue of a symmetric matrix that is constant on blocks
    (:func:`block_spectrum`)."""
    return float(np.min(block_spectrum(diag, within, between, sizes)[0]))


def block_spectrum(diag, within, between, sizes) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and their multiplicities of a symmetric matrix constant on blocks.

    The matrix has ``g`` diagonal blocks of side ``m_p`` with ``diag[p]`` on the diagonal
    and ``within[p]`` off it, and the constant ``between[p, q]`` in block ``(p, q)``. Its
    spectrum is ``diag[p] - within[p]`` (multiplicity ``m_p - 1``) together with the
    eigenvalues of the ``g x g`` matrix ``T_pp = diag[p] + (m_p - 1) within[p]``,
    ``T_pq = sqrt(m_p m_q) between[p, q]`` (MATH.md section 5).
    """
    sizes = np.asarray(sizes)
    diag = np.asarray(diag, dtype=float)
    within = np.asarray(within, dtype=float)
    root = np.sqrt(sizes.astype(float))
    T = np.asarray(between, dtype=float) * np.outer(root, root)
    T[np.diag_indices_from(T)] = diag + (sizes - 1) * within
    lam = np.linalg.eigvalsh(0.5 * (T + T.T))
    big = sizes >= 2
    return (np.concatenate([lam, diag[big] - within[big]]),
            np.concatenate([np.ones(lam.size, dtype=int), sizes[big] - 1]))


def repair(model: Model, X: np.ndarray, *, drop: float = 0.0) -> tuple[np.ndarray, float]:
    """Return a feasible version of ``X`` and how far it moved (max abs entry change).

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
    if drop == 0 and _feasible(model, Y):
        # Re-projecting would only add rounding (and can move an exact optimum on the
        # boundary, e.g. two antipodal classes, off it).
        return Y, float(np.max(np.abs(Y - X)))
    if model.level == "sample":
        Y = _psd_part(Y, drop)
        d = np.sqrt(np.maximum(np.diag(Y), 1e-300))
        Y = Y / np.outer(d, d)
        Y[np.diag_indices_from(Y)] = 1.0
    else:
        sizes = model.sizes
        Q = _psd_part(block_gram(Y, sizes), drop)
        qd = np.maximum(np.diag(Q), 1e-300)
        # Blocks of one class need Q_pp = 1; larger blocks need Q_pp <= m_p (a_p <= 1).
        scale = np.where(sizes == 1, 1.0 / np.sqrt(qd), np.minimum(1.0, np.sqrt(sizes / qd)))
        Q = Q * np.outer(scale, scale)
        Y = from_block_gram(Q, sizes)
        Y = 0.5 * (Y + Y.T)
        Y[np.diag_indices_from(Y)] = np.where(sizes == 1, 1.0,
                                              np.minimum(np.diag(Y), 1.0))
    # The extra cone of the relaxation (e.g. X >= 0); the mixing below keeps it, because the
    # all-orthogonal point lies in it.
    Y = model.relaxation.make_feasible(model, Y)
    # The all-orthogonal point: its class Gram (or sample Gram) is the identity.
    identity = np.eye(model.dim) if model.level == "sample" else model.identity()
    for _ in range(5):
        lam = min_eigenvalue(model, Y)
        if lam >= 0:
            break
        # Mixing with the orthogonal geometry (class Gram I) lifts every eigenvalue of the
        # class Gram by t (1 - lam) and keeps the diagonal exactly 1.
        # The floor covers the rounding error of the eigenvalue computation itself.
        t = min(1.0, 2.0 * (-lam) / (1.0 - lam) + 16 * np.finfo(float).eps * model.dim)
        Y = (1.0 - t) * Y + t * identity
    return Y, float(np.max(np.abs(Y - X)))


def _feasible(model: Model, Y: np.ndarray) -> bool:
    fixed = np.ones(model.dim, dtype=bool) if model.level == "sample" else model.sizes == 1
    d = np.diag(Y)
    return bool(np.all(d[fixed] == 1.0) and np.all(d[~fixed] <= 1.0)
                and model.relaxation.violation(model, Y) == 0.0
                and min_eigenvalue(model, Y) >= 0)


def _psd_part(A: np.ndarray, drop: float = 0.0) -> np.ndarray:
    lam, V = np.linalg.eigh(A)
    lam = np.where(lam > drop * max(lam[-1], 0.0), lam, 0.0)
    P = (V * lam) @ V.T
    return 0.5 * (P + P.T)
