"""Factorization: unit-norm features whose Gram matrix reproduces a relaxed optimum.

If the relaxed optimum ``M*`` (``k x k`` class Gram) has rank ``r``, any ``d >= r`` gives
class means ``U`` of shape ``(k, d)`` with ``U U^T = M*``: the relaxation is *tight* in
dimension ``d`` and ``U`` (lifted to the samples by the labels) is a global minimiser of the
non-convex problem (MATH.md section 3). For ``d < r`` no such factor exists; the truncated
factor (top ``d`` eigenpairs, rows renormalised) is then only a starting point for the
non-convex solver of :mod:`scconvex.features.nonconvex`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError

DEFAULT_RANK_TOL = 1e-6
"""Eigenvalues at most this times the largest eigenvalue count as zero in the rank; the
solver results (:data:`scconvex.pipeline.solve.RANK_TOL`) use the same value."""

_DIAG_TOL = 1e-6


class TruncationWarning(UserWarning):
    """The requested dimension is below the numerical rank: the factor is truncated."""


@dataclass(frozen=True)
class Factorization:
    """Unit-row features factoring a Gram matrix.

    Attributes
    ----------
    features : ndarray, shape (m, d)
        Unit rows. ``m = k`` class means, or ``m = n`` sample features (samples in the
        order of ``spec.labels`` or the labels given).
    rank : int
        Numerical rank of the input Gram: the number of eigenvalues greater than
        ``tol * lambda_max``.
    tol : float
        Relative eigenvalue tolerance used for ``rank``.
    d : int
        Feature dimension.
    exact : bool
        ``d >= rank``: the Gram of ``features`` reproduces the input up to the discarded
        eigenvalues (see ``residual``). False means the relaxation is **not tight** at
        this ``d`` and the features are a truncated starting point.
    residual : float
        Absolute Frobenius error ``||F F^T - G||_F`` against the input Gram (for sample
        features: against the lifted ``n x n`` Gram ``G_ij = M[y_i, y_j]``, ``G_ii = 1``).
    eigenvalues : ndarray
        Eigenvalues of the input Gram, largest first.
    level : {"class", "sample"}
        What the rows are: the rows of the input Gram, or samples lifted through labels.
    message : str
        Human-readable summary (says when the factor is truncated).
    """

    features: np.ndarray
    rank: int
    tol: float
    d: int
    exact: bool
    residual: float
    eigenvalues: np.ndarray
    level: str
    message: str

    @property
    def gram(self) -> np.ndarray:
        """``F F^T``."""
        return self.features @ self.features.T


def _gram_of(solution) -> tuple[np.ndarray, np.ndarray | None]:
    """The Gram matrix and (if known) the labels of ``solution``."""
    labels = None
    if isinstance(solution, np.ndarray) or isinstance(solution, (list, tuple)):
        G = solution
    elif hasattr(solution, "class_gram"):
        G = solution.class_gram
        if G is None:
            status = getattr(solution, "status", "unknown")
            raise InvalidInputError(f"the result has no class Gram (status {status!r})")
        spec = getattr(solution, "spec", None)
        if spec is not None and hasattr(spec, "labels"):
            labels = np.asarray(spec.labels)
    else:
        raise InvalidInputError("factor() needs a Gram matrix (ndarray) or a result with a "
                                f"'class_gram' attribute, got {type(solution).__name__}")
    G = np.asarray(G, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 1:
        raise InvalidInputError(f"the Gram matrix must be square, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise InvalidInputError("the Gram matrix contains non-finite values")
    scale = max(1.0, float(np.max(np.abs(G))))
    if np.max(np.abs(G - G.T)) > 1e-8 * scale:
        raise InvalidInputError("the Gram matrix is not symmetric")
    dev = float(np.max(np.abs(np.diag(G) - 1.0)))
    if dev > _DIAG_TOL:
        raise InvalidInputError(f"the Gram matrix must have unit diagonal (largest deviation "
                                f"{dev:.2e}); unit-norm features cannot reproduce it")
    return 0.5 * (G + G.T), labels


def numerical_rank(G, tol: float = DEFAULT_RANK_TOL) -> int:
    """Number of eigenvalues of symmetric ``G`` greater than ``tol`` times the largest.

    Parameters
    ----------
    G : array_like, shape (m, m)
    tol : float
        Relative tolerance, ``0 <= tol < 1``.

    Returns
    -------
    int
    """
    tol = _check_tol(tol)
    lam = np.linalg.eigvalsh(np.asarray(G, dtype=float))
    return int(np.sum(lam > tol * max(lam[-1], 0.0)))


def _check_tol(tol) -> float:
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise InvalidInputError(f"tol must be a number, got {tol!r}") from None
    if not (0.0 <= tol < 1.0):
        raise InvalidInputError(f"tol must lie in [0, 1), got {tol!r}")
    return tol


def factor(solution, d: int | None = None, *, tol: float = DEFAULT_RANK_TOL,
           samples: bool = False, labels=None, warn: bool = True) -> Factorization:
    """Unit-row features whose Gram matrix reproduces a relaxed optimum.

    Parameters
    ----------
    solution : ndarray or result object
        A Gram matrix with unit diagonal (``k x k`` class Gram, or any PSD unit-diagonal
        matrix), or an object with a ``class_gram`` attribute (e.g. a
        :class:`scconvex.pipeline.solve.SolveResult`; its ``spec`` supplies the labels).
    d : int, optional
        Feature dimension; default the numerical rank. If ``d`` exceeds the size of the
        Gram, the extra columns are zero.
    tol : float, default 1e-6
        Relative eigenvalue tolerance of the numerical rank: eigenvalues at most
        ``tol * lambda_max`` count as zero.
    samples : bool, default False
        Return one feature per sample (row ``y_i`` of the class factor for sample ``i``)
        instead of one per class; needs labels, from ``labels`` or ``solution.spec``.
    labels : array_like of int, optional
        Class index (row of the Gram) of each sample, for ``samples=True``.
    warn : bool, default True
        Emit a :class:`TruncationWarning` when ``d`` is below the rank. The result's
        ``exact`` flag says so either way.

    Returns
    -------
    Factorization

    Raises
    ------
    InvalidInputError
        If the Gram is not square, symmetric, finite, with unit diagonal; if ``d < 1``;
        or if labels are needed but missing or out of range.

    Notes
    -----
    With ``G = V diag(lambda) V^T`` (eigenvalues descending, negative rounding noise
    clipped to 0), the factor is ``F = V[:, :d] diag(sqrt(lambda[:d]))`` with rows
    renormalised to unit length. For ``d >= rank`` the renormalisation changes nothing but
    rounding and ``F F^T = G`` up to the discarded eigenvalues. Eigenvector signs are fixed
    (largest-magnitude entry positive) so the output is deterministic.

    Examples
    --------
    >>> import numpy as np
    >>> etf = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    >>> f = factor(etf)
    >>> f.rank, f.features.shape, f.exact, f.residual < 1e-12
    (2, (3, 2), True, True)
    """
    G, spec_labels = _gram_of(solution)
    tol = _check_tol(tol)
    m = G.shape[0]
    lam, V = np.linalg.eigh(G)
    lam, V = lam[::-1], V[:, ::-1]
    rank = int(np.sum(lam > tol * max(lam[0], 0.0)))
    if d is None:
        d = max(rank, 1)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise InvalidInputError(f"d must be an integer >= 1, got {d!r}")
    d = int(d)
    # Deterministic signs: the largest-magnitude entry of each eigenvector is positive.
    pivot = np.argmax(np.abs(V), axis=0)
    V = V * np.where(V[pivot, np.arange(m)] < 0, -1.0, 1.0)
    keep = min(d, m)
    F = np.zeros((m, d))
    F[:, :keep] = V[:, :keep] * np.sqrt(np.clip(lam[:keep], 0.0, None))
    norms = np.linalg.norm(F, axis=1)
    zero = norms <= 1e-300
    # A row living entirely in the discarded eigenspace has no direction left; give it
    # the first axis so that the output stays on the spheres.
    F[zero] = 0.0
    F[zero, 0] = 1.0
    norms[zero] = 1.0
    F /= norms[:, None]
    exact = d >= rank

    level = "class"
    if samples:
        lab = spec_labels if labels is None else np.asarray(labels)
        if lab is None:
            raise InvalidInputError("samples=True needs labels (pass labels= or a result "
                                    "with a spec)")
        if lab.ndim != 1 or lab.size < 1 or not np.issubdtype(lab.dtype, np.integer) \
                or lab.min() < 0 or lab.max() >= m:
            raise InvalidInputError(f"labels must be a 1-D integer array with values in "
                                    f"[0, {m}), got {lab!r}")
        counts = np.bincount(lab, minlength=m).astype(float)
        E = F @ F.T - G
        np.fill_diagonal(E, 0.0)  # both sides are 1 within each class
        residual = float(np.sqrt(np.sum(np.outer(counts, counts) * E * E)))
        features = F[lab]
        level = "sample"
    else:
        residual = float(np.linalg.norm(F @ F.T - G))
        features = F

    if exact:
        message = (f"exact factor: rank {rank} <= d = {d} (eigenvalues <= {tol:.1e} x "
                   f"largest count as zero); residual {residual:.2e}")
    else:
        message = (f"truncated factor: d = {d} is below the numerical rank {rank}, so the "
                   f"relaxation is not tight at this d and these features are only a "
                   f"starting point for the non-convex solver (residual {residual:.2e})")
        if np.any(zero):
            message += f"; {int(zero.sum())} row(s) had no component and were set to e_1"
        if warn:
            warnings.warn(message, TruncationWarning, stacklevel=2)
    return Factorization(features, rank, tol, d, exact, residual, lam, level, message)
