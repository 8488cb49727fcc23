"""Stage 2 of the pipeline: the model, i.e. the convex program at a chosen level.

A :class:`Model` fixes the variable of the relaxation:

* ``"sample"``: the ``n x n`` Gram matrix ``G`` (PSD, unit diagonal);
* ``"class"``: the ``k x k`` class-mean Gram matrix ``M`` (MATH.md section 4);
* ``"group"``: the ``g x g`` block matrix ``B`` of a partition of the classes into groups
  of equal count (MATH.md section 4); each class of a single sample is a group of its own
  (see :func:`build_model`).

Class and group levels share one representation: a partition of the classes into blocks of
``m_p`` classes with ``s_p`` samples each, and a symmetric ``g x g`` matrix ``B`` whose
diagonal holds the within-block cosine ``a_p`` (or 1 for a block of one class) and whose
off-diagonal holds ``b_pq``. The class level is the partition into single classes. The
feasible set is ``a_p <= 1`` for ``m_p >= 2`` and ``Q`` PSD, with ``Q_pp = 1 + (m_p - 1) a_p``,
``Q_pq = sqrt(m_p m_q) b_pq`` (:func:`block_gram`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .spec import ProblemSpec

MODEL_LEVELS = ("group", "class", "sample")

TAU_RANGE = (1e-5, 1e100)
"""Temperatures at which models are built and solved. Below 1e-5 the certified gap relative
to the excess loss stops resolving the geometry in float64 (measured: the native solver
certifies random count vectors down to 1e-6, with excess gaps near 1e-4 there, and none at
1e-8; from about 1e-20 the arithmetic overflows). Above 1e100 the loss is linear in the
cosines to far beyond float64 precision, so no solver can say anything about the geometry
(already from about 1e4 the answer is flagged as not determined,
:mod:`scconvex.certificates.uniqueness`)."""


@dataclass(frozen=True, eq=False)
class Model:
    """The convex program of a spec at one level.

    Attributes
    ----------
    spec : ProblemSpec
    level : {"group", "class", "sample"}
    sizes : ndarray of int, shape (g,)
        Classes per block (all ones at class and sample level).
    block_counts : ndarray of int, shape (g,)
        Samples per class in each block.
    block_of : ndarray of int, shape (k,)
        Block index of each class.
    """

    spec: ProblemSpec
    level: str
    sizes: np.ndarray
    block_counts: np.ndarray
    block_of: np.ndarray

    @property
    def dim(self) -> int:
        """Side of the matrix variable (``n``, ``k`` or ``g``)."""
        return self.spec.n if self.level == "sample" else len(self.sizes)

    @property
    def loss(self):
        """The loss object of the spec (:mod:`scconvex.losses`)."""
        from ..losses import loss_of

        return loss_of(self.spec)

    @property
    def relaxation(self):
        """The relaxation object of the spec (:mod:`scconvex.losses.relaxations`)."""
        from ..losses.relaxations import get_relaxation

        return get_relaxation(self.spec.relaxation)

    @property
    def scale(self) -> float:
        """Objective scaling used by conic solvers (MATH.md section 6): ``1 / n``."""
        return 1.0 / self.spec.n

    def identity(self) -> np.ndarray:
        """The feasible point with all class means orthogonal (``B = I``, ``G`` block ones)."""
        if self.level == "sample":
            lab = self.spec.labels
            return (lab[:, None] == lab[None, :]).astype(float)
        B = np.zeros((self.dim, self.dim))
        B[np.diag_indices(self.dim)] = np.where(self.sizes == 1, 1.0, 0.0)
        return B


def build_model(spec: ProblemSpec, level: str | None = None) -> Model:
    """Build the model of ``spec`` at ``level`` (default: ``spec.level``).

    ``"auto"`` picks the group level when some count of at least 2 repeats and the class
    level otherwise.

    At group level each count ``s >= 2`` held by several classes forms one block, and every
    class of a single sample is a block of its own (see Notes).

    Raises
    ------
    InvalidInputError
        For an unknown level, a level that does not reduce the loss exactly, or ``tau``
        outside :data:`TAU_RANGE`.

    Notes
    -----
    Classes of one sample have no anchor, so the cosines among them never enter the loss;
    the within-block cosine ``a_p`` of a block of such classes would be a free variable
    that only the constraints touch, and its optimum sits on the bound ``a_p = 1``. Solvers
    that treat ``a_p`` as an unconstrained interior variable (the native Burer-Monteiro
    factor does) then leave the feasible set and cannot certify (10,1,1 at tau 0.1 did
    not, where the class level did). One block per such class removes ``a_p``: every
    remaining cosine enters the loss, and the partition is still one of exchangeable
    classes, so the reduction stays exact (MATH.md section 4).
    """
    from ..losses import loss_of

    level = spec.level if level is None else level
    if not TAU_RANGE[0] <= spec.tau <= TAU_RANGE[1]:
        raise InvalidInputError(
            f"tau = {spec.tau:g} is outside [{TAU_RANGE[0]:g}, {TAU_RANGE[1]:g}], the range "
            "in which float64 certificates can resolve the geometry")
    exact = loss_of(spec).levels
    if level == "auto":
        level = "group" if _repeats(spec.counts) else "class"
        level = level if level in exact else exact[0]
    if level not in MODEL_LEVELS:
        raise InvalidInputError(f"unknown level {level!r}; choose one of {MODEL_LEVELS}")
    if level not in exact:
        raise InvalidInputError(f"the {level} level does not reduce this problem exactly: "
                                f"{loss_of(spec).description} is defined at the "
                                f"{', '.join(exact)} level only")
    counts = np.asarray(spec.counts)
    if level == "group":
        multi = [(c, m) for c, m in spec.groups if c >= 2]
        singles = int(np.sum(counts == 1))
        distinct = np.array([c for c, _ in multi] + [1] * singles, dtype=int)
        sizes = np.array([m for _, m in multi] + [1] * singles, dtype=int)
        block_of = np.searchsorted(-distinct[: len(multi)], -counts)
        one = counts == 1
        block_of[one] = len(multi) + np.arange(singles)
        return Model(spec, level, sizes, distinct, block_of)
    k = spec.k
    return Model(spec, level, np.ones(k, dtype=int), counts.copy(), np.arange(k))


def _repeats(counts) -> bool:
    """True when some count of at least 2 is held by two or more classes."""
    big = [c for c in counts if c >= 2]
    return len(set(big)) < len(big)


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


def class_gram(model: Model, X: np.ndarray) -> np.ndarray:
    """The ``k x k`` class-mean Gram matrix of a model variable.

    At sample level this is the mean of each off-diagonal class block of ``G`` (and 1 on
    the diagonal); it equals the class Gram exactly when ``G`` is class-collapsed.
    """
    if model.level == "sample":
        lab = model.spec.labels
        k = model.spec.k
        sums = class_sums(class_sums(X, lab, k).T, lab, k)
        counts = np.asarray(model.spec.counts, dtype=float)
        M = sums / np.outer(counts, counts)
    else:
        M = X[np.ix_(model.block_of, model.block_of)]
        M = np.array(M)
    M = 0.5 * (M + M.T)
    M[np.diag_indices_from(M)] = 1.0
    return M


def class_sums(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum the rows of ``values`` (shape ``(n, ...)``) class by class: shape ``(k, ...)``."""
    out = np.zeros((k,) + values.shape[1:])
    np.add.at(out, labels, values)
    return out
