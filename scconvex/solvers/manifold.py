"""Manifolds of row arrays: products of unit spheres and free (Euclidean) rows.

* :class:`Rows`: the rows of a ``(n, r)`` array, each either on the unit sphere or free
  (the factor ``W`` of the native backend: one-class blocks on spheres, larger blocks free);
* :class:`Spheres`: every row on the unit sphere (the features of the non-convex problem).

This module holds only the geometry (tangent projection, retraction, vector transport,
metric, random points). It knows nothing about the SC loss: costs live in
:mod:`scconvex.features.nonconvex` and :mod:`scconvex.solvers.native`, and the optimizers of
:mod:`scconvex.solvers.optim` only talk to a manifold through the methods below (the split used by
pymanopt's ``manifolds/`` and ``optimizers/``).

Notes
-----
The tangent space at ``X`` is ``{V : <x_i, v_i> = 0 for every row i}``, with the metric
inherited from the Frobenius inner product of the ambient space ``R^(n x d)``. The
Riemannian gradient of a function restricted to the manifold is the tangent projection of
its Euclidean gradient. The retraction ``R_X(V) = rownormalize(X + V)`` is well defined for
tangent ``V``, because then ``||x_i + v_i||^2 = 1 + ||v_i||^2 >= 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError


def _positive_int(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or int(x) < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1, got {x!r}")
    return int(x)


class _RowGeometry:
    """Projection, retraction and metric shared by :class:`Rows` and :class:`Spheres`.

    Subclasses provide ``_mask(X)``: True on sphere rows (None when every row is one).
    """

    def _mask(self, X: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def proj(self, X: np.ndarray, V: np.ndarray, *, inplace: bool = False) -> np.ndarray:
        """Orthogonal projection of an ambient ``V`` onto the tangent space at ``X``.

        ``v_i - <x_i, v_i> x_i`` on sphere rows, ``v_i`` on free rows; with
        ``inplace=True`` ``V`` itself is overwritten (saves a pass over large arrays).
        """
        radial = np.einsum("ij,ij->i", X, V)
        mask = self._mask(X)
        if mask is not None:
            radial *= mask
        if not inplace:
            return V - radial[:, None] * X
        V -= radial[:, None] * X
        return V

    def egrad2rgrad(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Riemannian gradient from a Euclidean one (the tangent projection, same metric)."""
        return self.proj(X, V)

    def retract_scaled(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``X + V`` with sphere rows normalised, and the factor applied to each row.

        ``d/dt R_X(t V)`` is the tangent projection of ``V`` times that factor, which line
        searches use for exact slopes.
        """
        Y = X + V
        scale = np.sqrt(np.einsum("ij,ij->i", Y, Y))
        mask = self._mask(X)
        if mask is None:
            np.divide(1.0, scale, out=scale)
        else:
            np.divide(1.0, scale, out=scale, where=mask)
            scale[~mask] = 1.0
        Y *= scale[:, None]
        return Y, scale

    def slope(self, grad: np.ndarray, d: np.ndarray, scale: np.ndarray) -> float:
        """``<grad, d/dt R_X(t d)>`` at a trial point, from the ``scale`` that
        :meth:`retract_scaled` returned there and the Riemannian gradient ``grad`` at it."""
        return float(np.einsum("ij,ij->i", grad, d) @ scale)

    def retract(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Metric-projection retraction: ``X + V`` with sphere rows normalised."""
        return self.retract_scaled(X, V)[0]

    def transport(self, X: np.ndarray, Y: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Vector transport of a tangent ``V`` at ``X`` to ``Y`` by projection."""
        return self.proj(Y, V)

    def inner(self, X: np.ndarray, U: np.ndarray, V: np.ndarray) -> float:
        """Riemannian inner product (Frobenius) of tangent vectors at ``X``."""
        return float(np.vdot(U, V))

    def norm(self, X: np.ndarray, V: np.ndarray) -> float:
        """Riemannian norm of a tangent vector at ``X``."""
        return float(np.linalg.norm(V))


@dataclass(frozen=True, eq=False)
class Rows(_RowGeometry):
    """Rows of an ``(n, r)`` array: unit-norm where ``sphere`` is True, free elsewhere.

    A product of unit spheres and Euclidean spaces (any number of columns ``r``).

    Parameters
    ----------
    sphere : ndarray of bool, shape (n,)
        Which rows live on the unit sphere.

    Examples
    --------
    >>> import numpy as np
    >>> M = Rows(np.array([True, False]))
    >>> Y = M.retract(np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 1.0]]))
    >>> np.round(np.linalg.norm(Y, axis=1), 6).tolist()
    [1.0, 2.236068]
    """

    sphere: np.ndarray

    def __post_init__(self) -> None:
        mask = np.asarray(self.sphere, dtype=bool)
        if mask.ndim != 1:
            raise InvalidInputError("sphere must be a 1-D boolean mask")
        object.__setattr__(self, "sphere", mask)

    def _mask(self, X: np.ndarray) -> np.ndarray:
        return self.sphere


@dataclass(frozen=True)
class Spheres(_RowGeometry):
    """The product of ``n`` unit spheres in ``R^d`` (oblique manifold, row convention).

    Parameters
    ----------
    n : int
        Number of points (rows), ``n >= 1``.
    d : int
        Ambient dimension of each sphere, ``d >= 1``.

    Examples
    --------
    >>> import numpy as np
    >>> M = Spheres(3, 2)
    >>> X = M.random_point(np.random.default_rng(0))
    >>> np.allclose(np.linalg.norm(X, axis=1), 1.0)
    True
    """

    n: int
    d: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _positive_int(self.n, "n"))
        object.__setattr__(self, "d", _positive_int(self.d, "d"))

    @property
    def dim(self) -> int:
        """Manifold dimension ``n (d - 1)``."""
        return self.n * (self.d - 1)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(n, d)`` of a point."""
        return (self.n, self.d)

    # ----------------------------------------------------------------- validation
    def check_point(self, X, *, atol: float = 1e-8) -> np.ndarray:
        """Return ``X`` as a float array after checking shape, finiteness and unit rows.

        Raises
        ------
        InvalidInputError
            If the shape is not ``(n, d)``, an entry is not finite, or a row norm
            differs from 1 by more than ``atol``.
        """
        X = np.asarray(X, dtype=float)
        if X.shape != self.shape:
            raise InvalidInputError(f"a point must have shape {self.shape}, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InvalidInputError("the point contains non-finite values")
        dev = np.max(np.abs(np.linalg.norm(X, axis=1) - 1.0))
        if dev > atol:
            raise InvalidInputError(f"rows must have unit norm (largest deviation {dev:.2e})")
        return X

    # ----------------------------------------------------------------- geometry
    def random_point(self, rng: np.random.Generator) -> np.ndarray:
        """A point drawn uniformly on the product of spheres (normalised Gaussian rows).

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness; the result is a deterministic function of its state.

        Returns
        -------
        ndarray, shape (n, d)
        """
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError("rng must be a numpy.random.Generator")
        X = rng.standard_normal(self.shape)
        norms = np.linalg.norm(X, axis=1)
        # A Gaussian row is zero with probability 0, but redraw it rather than divide by 0.
        while np.any(norms == 0.0):
            bad = norms == 0.0
            X[bad] = rng.standard_normal((int(bad.sum()), self.d))
            norms = np.linalg.norm(X, axis=1)
        return X / norms[:, None]

    def random_tangent(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random tangent vector at ``X`` of unit norm (for gradient checks)."""
        V = self.proj(X, rng.standard_normal(self.shape))
        nrm = self.norm(X, V)
        return V / nrm if nrm > 0 else V

    @property
    def sphere(self) -> np.ndarray:
        """Every row is on the sphere (the mask of :class:`Rows`)."""
        return np.ones(self.n, dtype=bool)

    def _mask(self, X: np.ndarray) -> None:
        return None

    def dist(self, X: np.ndarray, Y: np.ndarray) -> float:
        """Geodesic distance: root sum of squared great-circle angles between rows."""
        cos = np.clip(np.einsum("ij,ij->i", X, Y), -1.0, 1.0)
        # arccos loses accuracy near 1; the chord-based formula does not.
        chord = np.linalg.norm(X - Y, axis=1)
        ang = 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
        ang = np.where(cos < 0.0, np.arccos(cos), ang)
        return float(np.linalg.norm(ang))
