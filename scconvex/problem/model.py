"""Stage 2 of the pipeline: the model, i.e. the convex program of a spec at one level.

A :class:`Model` pairs a spec with a level object (:mod:`scconvex.levels`) and that level's
partition of the classes into blocks; its loss and relaxation are the spec's objects
(:mod:`scconvex.losses`). Everything that depends on the level is asked of
``model.level``; see :mod:`scconvex.levels` for the variables of each level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..levels import Level, choose
from ..levels.blocks import block_gram, class_sums, from_block_gram, q_gradient
from ..losses import loss_of, relaxation_of
from .spec import ProblemSpec

__all__ = ["TAU_RANGE", "Model", "block_gram", "build_model", "class_gram", "class_sums",
           "from_block_gram", "q_gradient"]

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
    level : Level
        The level object (:mod:`scconvex.levels`); ``level.name`` is its name.
    sizes : ndarray of int, shape (g,)
        Classes per block (all ones at class and sample level).
    block_counts : ndarray of int, shape (g,)
        Samples per class in each block.
    block_of : ndarray of int, shape (k,)
        Block index of each class.
    """

    spec: ProblemSpec
    level: Level
    sizes: np.ndarray
    block_counts: np.ndarray
    block_of: np.ndarray

    @property
    def dim(self) -> int:
        """Side of the matrix variable (``n``, ``k`` or ``g``)."""
        return self.level.side(self)

    @property
    def loss(self):
        """The loss object of the spec (:mod:`scconvex.losses`)."""
        return loss_of(self.spec)

    @property
    def relaxation(self):
        """The relaxation object of the spec (:mod:`scconvex.losses.relaxations`)."""
        return relaxation_of(self.spec)

    @property
    def scale(self) -> float:
        """Objective scaling used by conic solvers (MATH.md section 6): ``1 / n``."""
        return 1.0 / self.spec.n

    def identity(self) -> np.ndarray:
        """The feasible point with all class means orthogonal (``B = I``, ``G`` block ones)."""
        return self.level.identity(self)


def build_model(spec: ProblemSpec, level: str | Level | None = None) -> Model:
    """Build the model of ``spec`` at ``level`` (default: ``spec.level``).

    ``"auto"`` picks the group level when some count of at least 2 repeats and the class
    level otherwise (:func:`scconvex.levels.choose`). How each level partitions the
    classes: :meth:`scconvex.levels.Level.partition`.

    Raises
    ------
    InvalidInputError
        For an unknown level, a level that does not reduce the loss exactly, or ``tau``
        outside :data:`TAU_RANGE`.
    """
    if not isinstance(spec, ProblemSpec):
        raise InvalidInputError(f"spec must be a ProblemSpec, got {type(spec).__name__}")
    level = spec.level if level is None else level
    if not TAU_RANGE[0] <= spec.tau <= TAU_RANGE[1]:
        raise InvalidInputError(
            f"tau = {spec.tau:g} is outside [{TAU_RANGE[0]:g}, {TAU_RANGE[1]:g}], the range "
            "in which float64 certificates can resolve the geometry")
    loss = loss_of(spec)
    exact = loss.levels
    level = choose(spec, level, exact)
    if level not in exact:
        raise InvalidInputError(f"the {level.name} level does not reduce this problem "
                                f"exactly: {loss.description} is defined at the "
                                f"{', '.join(x.name for x in exact)} level only")
    sizes, block_counts, block_of = level.partition(spec)
    return Model(spec, level, sizes, block_counts, block_of)


def class_gram(model: Model, X: np.ndarray) -> np.ndarray:
    """The ``k x k`` class-mean Gram matrix of a model variable
    (:meth:`scconvex.levels.Level.class_gram`)."""
    return model.level.class_gram(model, X)
