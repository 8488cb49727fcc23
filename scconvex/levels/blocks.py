"""Matrices that are constant on blocks of classes: the algebra every level shares.

Class and group level represent a class-collapsed geometry by a partition of the classes
into blocks of ``m_p`` classes with ``s_p`` samples each, and a symmetric ``g x g`` matrix
``B`` whose diagonal holds the within-block cosine ``a_p`` (or 1 for a block of one class)
and whose off-diagonal holds ``b_pq`` (MATH.md section 4). The feasible set is
``a_p <= 1`` for ``m_p >= 2`` and ``Q`` PSD, with ``Q_pp = 1 + (m_p - 1) a_p`` and
``Q_pq = sqrt(m_p m_q) b_pq`` (:func:`block_gram`). The spectrum of a matrix constant on
blocks comes from a ``g x g`` eigenproblem (:func:`block_spectrum`, MATH.md section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANK_TOL = 1e-6
"""Eigenvalues of a Gram matrix below ``RANK_TOL`` times the largest do not count in its
numerical rank (the rank of a solve, of a factorisation and of a verified file)."""


def block_gram(B: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The ``g x g`` matrix ``Q`` whose PSD-ness (with ``a_p <= 1``) makes ``B`` feasible."""
    root = np.sqrt(sizes.astype(float))
    Q = B * np.outer(root, root)
    Q[np.diag_indices_from(Q)] = 1.0 + (sizes - 1) * np.diag(B)
    return Q


def from_block_gram(Q: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`block_gram` (blocks of one class get diagonal 1)."""
    root = np.sqrt(sizes.astype(float))
    B = Q / np.outer(root, root)
    d = np.ones(len(sizes))
    big = sizes >= 2
    d[big] = (np.diag(Q)[big] - 1.0) / (sizes[big] - 1)
    B[np.diag_indices_from(B)] = d
    return B


def q_gradient(D: np.ndarray, invroot: np.ndarray | None, free: np.ndarray,
               free_den: np.ndarray) -> np.ndarray:
    """Symmetric gradient in ``Q`` of a function of the cosines ``B`` of :func:`block_gram`.

    ``D`` holds the row partials ``dF/dB_pq`` (one anchor row each). Off the diagonal
    ``B_pq = Q_pq / sqrt(m_p m_q)`` (``invroot`` is ``1 / sqrt(m_p m_q)``, or None at class
    level where it is 1); on the diagonal of a free block (``m_p >= 2``)
    ``B_pp = (Q_pp - 1) / (m_p - 1)``, and the diagonal of a one-class block is fixed, so
    its entry of the gradient is 0.
    """
    C = D + D.T
    C *= 0.5
    if invroot is not None:
        C *= invroot
    diag = np.zeros(len(C))
    diag[free] = D[free, free] / free_den
    C[np.diag_indices_from(C)] = diag
    return C


def class_sums(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum the rows of ``values`` (shape ``(n, ...)``) class by class: shape ``(k, ...)``."""
    out = np.zeros((k,) + values.shape[1:])
    np.add.at(out, labels, values)
    return out


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

    def rank(self, tol: float = RANK_TOL) -> int:
        """Eigenvalues above ``tol`` times the largest, with multiplicity (the rule of
        :func:`scconvex.features.factor.numerical_rank`)."""
        top = max(float(np.max(self.values)), 0.0)
        return int(np.sum(self.multiplicity[self.values > tol * top]))


def line_spectrum(side: int) -> GramSpectrum:
    """The exact spectrum ``{0, side}`` of ``s s^T`` (every mean on one line,
    :func:`sign_vector`); an eigensolver may say -1e-16 for its 0."""
    if side == 1:
        return GramSpectrum(np.ones(1), np.ones(1, dtype=int))
    return GramSpectrum(np.array([0.0, float(side)]), np.array([side - 1, 1]))


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


def psd_part(A: np.ndarray, drop: float = 0.0) -> np.ndarray:
    """The projection of a symmetric ``A`` onto the PSD cone; eigenvalues below ``drop``
    times the largest are set to zero as well."""
    lam, V = np.linalg.eigh(A)
    lam = np.where(lam > drop * max(lam[-1], 0.0), lam, 0.0)
    P = (V * lam) @ V.T
    return 0.5 * (P + P.T)
