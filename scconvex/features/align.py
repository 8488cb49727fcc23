"""Comparing feature sets up to rotation.

The SC loss depends on features only through their Gram matrix, so two optimal feature
sets agree at best up to an orthogonal transformation. Three comparisons:

* :func:`procrustes`: the orthogonal ``R`` that best maps ``A`` onto ``B`` (orthogonal
  Procrustes, via :func:`scipy.linalg.orthogonal_procrustes`) and the residual distance;
* :func:`rotation_distance`: that residual, a rotation-invariant distance;
* :func:`gram_distance`: ``||A A^T - B B^T||_F``, which needs no alignment at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes

from ..errors import InvalidInputError


def _as_features(X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InvalidInputError(f"{name} must be a non-empty 2-D array (rows are points), "
                                f"got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise InvalidInputError(f"{name} contains non-finite values")
    return X


def _pair(A, B) -> tuple[np.ndarray, np.ndarray]:
    A = _as_features(A, "A")
    B = _as_features(B, "B")
    if A.shape[0] != B.shape[0]:
        raise InvalidInputError(f"A and B must have the same number of rows, got "
                                f"{A.shape[0]} and {B.shape[0]}")
    # Features in different dimensions are compared in the larger one: zero-padding
    # embeds R^d in R^d' without changing any Gram matrix.
    d = max(A.shape[1], B.shape[1])
    if A.shape[1] < d:
        A = np.pad(A, ((0, 0), (0, d - A.shape[1])))
    if B.shape[1] < d:
        B = np.pad(B, ((0, 0), (0, d - B.shape[1])))
    return A, B


@dataclass(frozen=True)
class ProcrustesResult:
    """Orthogonal alignment of ``A`` onto ``B``.

    Attributes
    ----------
    rotation : ndarray, shape (d, d)
        Orthogonal ``R`` minimising ``||A R - B||_F`` (``d`` the larger of the two
        feature dimensions; a reflection is allowed, ``det R = -1``).
    aligned : ndarray, shape (m, d)
        ``A R``.
    distance : float
        ``||A R - B||_F`` (absolute).
    max_row_distance : float
        Largest ``||(A R)_i - B_i||`` over rows.
    """

    rotation: np.ndarray
    aligned: np.ndarray
    distance: float
    max_row_distance: float


def procrustes(A, B) -> ProcrustesResult:
    """Orthogonal Procrustes alignment of feature set ``A`` onto ``B``.

    Parameters
    ----------
    A, B : array_like, shape (m, d_A) and (m, d_B)
        Two feature sets with matching rows (row ``i`` of ``A`` corresponds to row ``i``
        of ``B``). If ``d_A != d_B`` the smaller is zero-padded.

    Returns
    -------
    ProcrustesResult

    Raises
    ------
    InvalidInputError
        If the arrays are not 2-D, have different numbers of rows or non-finite entries.

    Notes
    -----
    ``R = U V^T`` for the SVD ``A^T B = U S V^T`` (Schoenemann 1966). Rotations *and*
    reflections are allowed, since both preserve the Gram matrix and the loss.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.eye(3)[:, :2]
    >>> Q = np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> round(procrustes(A, A @ Q).distance, 12)
    0.0
    """
    A, B = _pair(A, B)
    R, _ = orthogonal_procrustes(A, B)
    aligned = A @ R
    diff = aligned - B
    return ProcrustesResult(R, aligned, float(np.linalg.norm(diff)),
                            float(np.max(np.linalg.norm(diff, axis=1))))


def rotation_distance(A, B) -> float:
    """Rotation-invariant distance ``min_{R orthogonal} ||A R - B||_F`` (absolute).

    It is symmetric, zero exactly when ``B = A R`` for an orthogonal ``R``, and satisfies
    the triangle inequality (a metric on orbits under the orthogonal group).
    """
    return procrustes(A, B).distance


def gram_distance(A, B, *, relative: bool = False) -> float:
    """Frobenius distance between the Gram matrices of two feature sets.

    Parameters
    ----------
    A, B : array_like, shape (m, d_A) and (m, d_B)
        Feature sets with matching rows (dimensions may differ).
    relative : bool, default False
        If False (default) return the **absolute** distance ``||A A^T - B B^T||_F``; if
        True divide it by ``||B B^T||_F``.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> gram_distance(np.eye(2), -np.eye(2))
    0.0
    """
    A, B = _pair(A, B)
    GB = B @ B.T
    dist = float(np.linalg.norm(A @ A.T - GB))
    if relative:
        ref = float(np.linalg.norm(GB))
        return dist / ref if ref > 0 else (0.0 if dist == 0 else float("inf"))
    return dist
