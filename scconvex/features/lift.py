"""Stage 5 of the pipeline: lifting a collapsed solution to the class and sample level.

A group-level answer is ``g x g`` numbers; the class Gram it stands for is ``k x k`` and the
sample Gram ``n x n``. Lifting is lazy: :func:`lift` returns the class Gram (``k x k``) or a
:class:`SampleGram` view that computes sample entries on demand and forms the dense
``n x n`` array only through :meth:`SampleGram.toarray`. Unit-norm features (class means
``(k, d)`` or samples ``(n, d)``) come from :func:`scconvex.features.factor.factor`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..levels import CLASS, SAMPLE
from ..levels.blocks import class_sums

DENSE_LIMIT = 20_000
"""Largest ``n`` for which :meth:`SampleGram.toarray` forms the dense matrix by default."""


@dataclass(frozen=True, eq=False)
class SampleGram:
    """The ``n x n`` Gram matrix of a class-collapsed geometry, without storing it.

    ``G[i, j] = M[y_i, y_j]`` for ``i != j`` and ``G[i, i] = 1``, with ``M`` the class
    Gram and ``y`` the labels (samples listed class by class, as ``spec.labels``).

    Examples
    --------
    >>> import numpy as np
    >>> G = SampleGram(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([0, 0, 1]))
    >>> G.shape, G[0, 2], G[0, 1]
    ((3, 3), -1.0, 1.0)
    """

    class_gram: np.ndarray
    labels: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        n = len(self.labels)
        return (n, n)

    def __getitem__(self, index) -> np.ndarray | float:
        i, j = index
        rows = np.asarray(self.labels[i])
        cols = np.asarray(self.labels[j])
        block = self.class_gram[np.ix_(np.atleast_1d(rows), np.atleast_1d(cols))]
        ii = np.atleast_1d(np.arange(self.shape[0])[i])
        jj = np.atleast_1d(np.arange(self.shape[0])[j])
        block = np.where(ii[:, None] == jj[None, :], 1.0, block)
        if rows.ndim == 0:
            block = block[0]
        if cols.ndim == 0:
            block = block[..., 0]
        return float(block) if block.ndim == 0 else block

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """``G @ x`` in O(n + k^2) time: sum ``x`` per class, multiply by ``M``, spread."""
        x = np.asarray(x, dtype=float)
        sums = class_sums(x, self.labels, self.class_gram.shape[0])
        return (self.class_gram @ sums)[self.labels]

    def toarray(self, *, max_n: int = DENSE_LIMIT) -> np.ndarray:
        """The dense ``n x n`` matrix; refuses ``n > max_n`` to protect memory."""
        n = self.shape[0]
        if n > max_n:
            raise InvalidInputError(f"the sample Gram has n = {n} rows ({8 * n * n / 1e9:.1f}"
                                    f" GB dense); raise max_n to form it anyway")
        G = self.class_gram[np.ix_(self.labels, self.labels)]
        np.fill_diagonal(G, 1.0)
        return G


def lift(result, level: str = "class"):
    """Lift a solve result to the class or the sample level.

    Parameters
    ----------
    result : SolveResult
        A result with a geometry (any level).
    level : {"class", "sample"}
        ``"class"`` gives the ``k x k`` class Gram (ndarray); ``"sample"`` gives a lazy
        :class:`SampleGram` (call ``.toarray()`` for the dense ``n x n`` matrix). At sample
        level the solved ``G`` itself is returned as a dense array.

    Returns
    -------
    ndarray or SampleGram
    """
    if level not in LIFTS:
        raise InvalidInputError(f"level must be one of {tuple(LIFTS)}, got {level!r}")
    M = getattr(result, "class_gram", None)
    if M is None:
        raise InvalidInputError(f"the result has no geometry (status "
                                f"{getattr(result, 'status', 'unknown')!r})")
    return LIFTS[level](result, M)


def _to_samples(result, M: np.ndarray):
    if result.model.level.dense:
        return np.array(result.variable)  # the solved sample Gram itself
    return SampleGram(M, result.spec.labels)


LIFTS = {CLASS.name: lambda result, M: M, SAMPLE.name: _to_samples}
"""What :func:`lift` returns for each level it lifts to."""
