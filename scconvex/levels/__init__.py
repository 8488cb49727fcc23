"""The levels of the convex program as objects: sample, class and group.

A level fixes the variable of the relaxation (MATH.md sections 3 and 4):

* :data:`SAMPLE`: the ``n x n`` Gram matrix ``G`` (PSD, unit diagonal);
* :data:`CLASS`: the ``k x k`` Gram matrix ``M`` of the class means;
* :data:`GROUP`: the ``g x g`` block matrix ``B`` of a partition of the classes into groups
  of equal count, the classes of a single sample included (see
  :meth:`GroupLevel.partition`).

Class and group level share one representation (:mod:`scconvex.levels.blocks`): a
partition of the classes into blocks of ``m_p`` classes with ``s_p`` samples each; the
class level is the partition into single classes. Each level object knows its variables
and their multiplicities, how to build its Gram and lift it to the next level, its PSD
test and the repair step that makes a point feasible, its memory estimate, what its
certificate ranges over and where a certificate file stores its geometry. Code elsewhere
asks these objects; it never compares level names (the names are for the command line and
JSON only).

The objects read a model through four attributes (``spec``, ``sizes``, ``block_counts``,
``block_of``; :class:`scconvex.problem.model.Model`) and a spec through ``counts``,
``labels``, ``groups``, ``n`` and ``k``, so this layer imports nothing above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError, lookup
from ..resources import solve_bytes
from .blocks import (
    RANK_TOL,
    GramSpectrum,
    block_gram,
    block_spectrum,
    class_sums,
    from_block_gram,
    line_spectrum,
    psd_part,
    sign_vector,
)


@dataclass(frozen=True, eq=False)
class Level:
    """A level of the convex program (see the module docstring). Subclasses fill in.

    Attributes
    ----------
    name : str
        The level's name on the command line and in JSON.
    description : str
        What its variable is.
    dense : bool
        True when the variable is the sample Gram itself (no reduction): its certificate
        is the dense one of MATH.md section 5 and it has no block structure.
    certified_over : str
        The elliptope its own certificate ranges over (``"sample"``: n x n Grams,
        ``"class"``: k x k Grams). A sample-level certificate is computed at every level.
    key : str
        Where a certificate file stores the geometry of this level.
    compressed : bool
        True when the variable is smaller than the class Gram it stands for (one block per
        group of classes): lifting it to ``k x k`` may need far more memory than solving.
    """

    name: str
    description: str
    dense: bool
    certified_over: str
    key: str
    compressed: bool = False

    def __repr__(self) -> str:
        return f"<level {self.name}>"

    def __str__(self) -> str:
        return self.name

    # -- variables
    def partition(self, spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sizes, block_counts, block_of)``: classes per block, samples per class of
        each block, and the block of each class."""
        k = spec.k
        return np.ones(k, dtype=int), np.asarray(spec.counts).copy(), np.arange(k)

    def side(self, model) -> int:
        """Side of the matrix variable (``n``, ``k`` or ``g``)."""
        return len(model.sizes)

    def rows(self, spec) -> int:
        """Unit vectors of a factorisation at this level (``n`` or ``k``)."""
        return spec.k

    # -- resources
    def memory(self, model, solver: str) -> float:
        """Estimated peak memory of solving, repairing and certifying the model's variable
        with ``solver`` (:func:`scconvex.resources.solve_bytes` of its side)."""
        return solve_bytes(self.side(model), solver)

    def memory_bound(self, spec, solver: str) -> float:
        """An upper bound of :meth:`memory` from the spec alone, before the partition is
        built (a scheduler sizing its workers): the side is at most ``k`` here."""
        return solve_bytes(spec.k, solver)

    def fixed_diagonal(self, model) -> np.ndarray:
        """Which diagonal entries of the variable are fixed at 1 (the others are
        ``a_p <= 1``, the cosine between two classes of a block)."""
        return model.sizes == 1

    def identity(self, model) -> np.ndarray:
        """The feasible point with all class means orthogonal (class Gram ``I``)."""
        B = np.zeros((self.side(model),) * 2)
        B[np.diag_indices_from(B)] = np.where(model.sizes == 1, 1.0, 0.0)
        return B

    def orthonormal(self, model) -> np.ndarray:
        """A feasible point whose Gram, in the level's own eigenproblem, is the identity:
        mixing a point with it lifts every eigenvalue by the same amount (the repair's last
        step). At class and group level this is :meth:`identity`."""
        return self.identity(model)

    # -- geometry
    def class_gram(self, model, X: np.ndarray) -> np.ndarray:
        """The ``k x k`` class-mean Gram matrix of a variable ``X`` (diagonal 1)."""
        M = np.array(X[np.ix_(model.block_of, model.block_of)])
        M = 0.5 * (M + M.T)
        M[np.diag_indices_from(M)] = 1.0
        return M

    def class_means(self, model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cosines, norms)`` of the class means ``mu_c = mean of the features of class
        c``: the ``k x k`` cosines between them and their lengths. At class and group level
        the samples of a class coincide, so the means are unit vectors and the cosines are
        :meth:`class_gram`."""
        return self.class_gram(model, X), np.ones(model.spec.k)

    def cosines(self, model, X: np.ndarray) -> np.ndarray:
        """Every cosine between two different class means that ``X`` holds, each once per
        block pair (no lifting): the off-diagonal of ``X`` and ``a_p`` of blocks of two or
        more classes."""
        off = X[~np.eye(len(X), dtype=bool)]
        return np.concatenate([off, np.diag(X)[model.sizes >= 2]])

    def collapsed(self, model, X: np.ndarray) -> np.ndarray | None:
        """The class-collapsed version of a variable, where it can differ from it (None:
        the level's variables are collapsed already)."""
        return None

    def spectrum(self, model, X: np.ndarray) -> GramSpectrum:
        """The spectrum of the class Gram that ``X`` represents, from the block structure
        in O(g^3): eigenvalue ``1 - a_p`` on zero-sum vectors of each block and the
        eigenvalues of ``Q`` (:func:`scconvex.levels.blocks.block_spectrum`)."""
        if sign_vector(X) is not None:
            return line_spectrum(model.spec.k)
        values, mult = block_spectrum(np.ones(self.side(model)), np.diag(X), X, model.sizes)
        return GramSpectrum(values, mult)

    def project(self, model, Y: np.ndarray, drop: float = 0.0) -> np.ndarray:
        """Project a symmetric ``Y`` onto the PSD cone and rescale it into the level's
        constraint set (unit diagonal; ``a_p <= 1``). ``drop``: eigenvalues below this
        fraction of the largest are zeroed (:func:`scconvex.levels.blocks.psd_part`)."""
        sizes = model.sizes
        Q = psd_part(block_gram(Y, sizes), drop)
        qd = np.maximum(np.diag(Q), 1e-300)
        # Blocks of one class need Q_pp = 1; larger blocks need Q_pp <= m_p (a_p <= 1).
        scale = np.where(sizes == 1, 1.0 / np.sqrt(qd), np.minimum(1.0, np.sqrt(sizes / qd)))
        Q = Q * np.outer(scale, scale)
        Y = from_block_gram(Q, sizes)
        Y = 0.5 * (Y + Y.T)
        Y[np.diag_indices_from(Y)] = np.where(sizes == 1, 1.0, np.minimum(np.diag(Y), 1.0))
        return Y

    # -- certificate files
    def store(self, model, X: np.ndarray) -> dict:
        """What a certificate file holds of this level's geometry (under :attr:`key`)."""
        return {self.key: X}

    def stored_partition(self, spec, data: dict):
        """The partition a certificate file stores when it differs from
        :meth:`partition` and is valid too, else None (only the group level has one)."""
        return None

    def load(self, model, data: dict, read) -> np.ndarray:
        """The variable stored in a certificate file, validated against ``model``.

        ``read(container, key, size)`` parses one stored ``size x size`` matrix (the
        verifier's strict reader) and raises InvalidInputError when it is malformed.
        """
        return read(data, self.key, self.side(model))


class SampleLevel(Level):
    """The ``n x n`` sample Gram ``G``: the relaxation itself, no reduction."""

    def side(self, model) -> int:
        return model.spec.n

    def rows(self, spec) -> int:
        return spec.n

    def memory_bound(self, spec, solver: str) -> float:
        return solve_bytes(spec.n, solver)

    def fixed_diagonal(self, model) -> np.ndarray:
        return np.ones(self.side(model), dtype=bool)

    def identity(self, model) -> np.ndarray:
        lab = model.spec.labels
        return (lab[:, None] == lab[None, :]).astype(float)

    def orthonormal(self, model) -> np.ndarray:
        return np.eye(self.side(model))

    def class_gram(self, model, X: np.ndarray) -> np.ndarray:
        """The mean of each off-diagonal class block of ``G`` (1 on the diagonal); it is
        the class Gram exactly when ``G`` is class-collapsed."""
        lab = model.spec.labels
        k = model.spec.k
        sums = class_sums(class_sums(X, lab, k).T, lab, k)
        counts = np.asarray(model.spec.counts, dtype=float)
        M = sums / np.outer(counts, counts)
        M = 0.5 * (M + M.T)
        M[np.diag_indices_from(M)] = 1.0
        return M

    def class_means(self, model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The class means of a sample Gram: ``mu_c . mu_c' = mean of G over the block of
        classes c and c'`` (the diagonal entries of ``G`` included), so their lengths are
        the square roots of the diagonal block means, below 1 unless the class has
        collapsed, and their cosines differ from :meth:`class_gram` (the block means with
        the diagonal set to 1) unless ``G`` is class-collapsed. A mean of length 0 has no
        direction: its cosines are NaN."""
        lab = model.spec.labels
        k = model.spec.k
        sums = class_sums(class_sums(X, lab, k).T, lab, k)
        counts = np.asarray(model.spec.counts, dtype=float)
        inner = 0.5 * (sums + sums.T) / np.outer(counts, counts)
        norms = np.sqrt(np.maximum(np.diag(inner), 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.clip(inner / np.outer(norms, norms), -1.0, 1.0)
        zero = norms <= 1e-12
        cos[zero, :] = np.nan
        cos[:, zero] = np.nan
        cos[np.diag_indices_from(cos)] = np.where(zero, np.nan, 1.0)
        return cos, norms

    def cosines(self, model, X: np.ndarray) -> np.ndarray:
        """The cosines between two different class means (:meth:`class_means`)."""
        M = self.class_means(model, X)[0]
        return M[~np.eye(len(M), dtype=bool)]

    def spectrum(self, model, X: np.ndarray) -> GramSpectrum:
        if sign_vector(X) is not None:
            return line_spectrum(model.spec.n)
        lam = np.linalg.eigvalsh(X)
        return GramSpectrum(lam, np.ones(lam.size, dtype=int))

    def project(self, model, Y: np.ndarray, drop: float = 0.0) -> np.ndarray:
        Y = psd_part(Y, drop)
        d = np.sqrt(np.maximum(np.diag(Y), 1e-300))
        Y = Y / np.outer(d, d)
        Y[np.diag_indices_from(Y)] = 1.0
        return Y

    def collapsed(self, model, X: np.ndarray) -> np.ndarray:
        """The class-collapsed version of a sample Gram: the average over within-class
        permutations, with within-class cosines set to 1 (MATH.md section 4)."""
        lab = model.spec.labels
        return self.class_gram(model, X)[np.ix_(lab, lab)]


class ClassLevel(Level):
    """The ``k x k`` class-mean Gram ``M`` (every class a block of its own)."""


class GroupLevel(Level):
    """One block per distinct count (MATH.md section 4)."""

    def partition(self, spec):
        """One block per distinct count, the classes of a single sample included.

        Classes of one sample have no anchor, so the cosine ``a_p`` between two of them
        enters no term of the loss: only the constraints touch it, and raising it to 1
        keeps every feasible point feasible (``Q + t e_p e_p^T`` stays PSD), so ``a_p = 1``
        is optimal. Their classes then coincide, and the block behaves like one class that
        weighs ``m_p`` samples in the other anchors' terms: the native backend solves it as
        one unit vector (:func:`scconvex.losses.base.native_geometry`); conic solvers keep
        ``a_p`` free. Proof and the interval of optimal ``a_p``: docs/theory.md, section
        4. (Before issue 21 every such class was a block of its own: 4,877 blocks instead
        of 2,987 for 21,841 classes down to one sample.)
        """
        counts = np.asarray(spec.counts)
        distinct = np.array([c for c, _ in spec.groups], dtype=int)
        sizes = np.array([m for _, m in spec.groups], dtype=int)
        block_of = np.searchsorted(-distinct, -counts)
        return sizes, distinct, block_of

    def store(self, model, X):
        return {self.key: {"counts": model.block_counts, "sizes": model.sizes,
                           "block_of": model.block_of, "gram": X}}

    def load(self, model, data, read):
        groups = data.get(self.key)
        if not isinstance(groups, dict):
            raise InvalidInputError(f"a {self.name}-level certificate needs a "
                                    f"{self.key!r} object")
        for key, expected in (("counts", model.block_counts), ("sizes", model.sizes),
                              ("block_of", model.block_of)):
            if not same_json(groups.get(key), expected.tolist()):
                raise InvalidInputError(f"{self.key}.{key} does not match the spec's counts")
        return read(groups, "gram", self.side(model))

    def stored_partition(self, spec, data: dict) -> tuple[np.ndarray, np.ndarray,
                                                          np.ndarray] | None:
        """The partition a certificate file stores, when it is one of classes of equal
        count into blocks other than :meth:`partition`'s (else None).

        Any such partition reduces the problem exactly (the average of an optimum over
        the permutations inside each block is optimal) and lifts to a class Gram, so its
        certificates are as valid: files written before the classes of one sample shared a
        block (one block each) still verify.

        Raises
        ------
        InvalidInputError
            When the stored blocks are malformed or do not hold classes of equal count.
        """
        groups = data.get(self.key)
        if not isinstance(groups, dict):
            return None
        parts = {}
        for key in ("counts", "sizes", "block_of"):
            got = groups.get(key)
            if not (isinstance(got, list) and got and all(
                    isinstance(x, int) and not isinstance(x, bool) for x in got)):
                raise InvalidInputError(f"{self.key}.{key} must be a list of integers")
            parts[key] = np.array(got, dtype=np.int64)
        counts, sizes, block_of = parts["counts"], parts["sizes"], parts["block_of"]
        g = counts.size
        if (sizes.size != g or block_of.size != spec.k or np.any(block_of < 0)
                or np.any(block_of >= g)
                or not np.array_equal(np.bincount(block_of, minlength=g), sizes)
                or not np.array_equal(counts[block_of],
                                      np.asarray(spec.counts, dtype=np.int64))):
            raise InvalidInputError(f"{self.key} does not match the spec's counts")
        own = self.partition(spec)
        if all(np.array_equal(a, b) for a, b in zip((sizes, counts, block_of), own,
                                                   strict=True)):
            return None
        return sizes, counts, block_of


SAMPLE = SampleLevel("sample", "the n x n sample Gram", dense=True, certified_over="sample",
                     key="sample_gram")
CLASS = ClassLevel("class", "the k x k Gram of the class means", dense=False,
                   certified_over="class", key="class_gram")
GROUP = GroupLevel("group", "one block per distinct count", dense=False,
                   certified_over="class", key="groups", compressed=True)

LEVELS: dict[str, Level] = {level.name: level for level in (GROUP, CLASS, SAMPLE)}
"""The level objects by name, coarsest first."""

AUTO = "auto"
"""The level name that lets :func:`choose` pick."""


def get_level(name: object) -> Level:
    """The level object called ``name`` (a level object is returned as it is)."""
    if isinstance(name, Level):
        return name
    return lookup(LEVELS, name, "level")


def choose(spec, name: object, exact: tuple[Level, ...]) -> Level:
    """The level to build: ``name``, or for ``"auto"`` the coarsest that reduces
    ``spec`` exactly and pays off (group level when some count repeats, else class
    level), among the levels ``exact`` of the spec's loss.

    Raises
    ------
    InvalidInputError
        For an unknown level or one that does not reduce the loss exactly.
    """
    if name == AUTO:
        counts = list(spec.counts)
        level = GROUP if len(set(counts)) < len(counts) else CLASS
        return level if level in exact else exact[0]
    if not isinstance(name, Level) and name not in LEVELS:
        raise InvalidInputError(f"unknown level {name!r}; choose one of "
                                f"{tuple(LEVELS)} or {AUTO!r}")
    return get_level(name)


def same_json(claim, value) -> bool:
    """Exact equality of JSON values, numbers by value (``1 == 1.0``, but not ``True``)."""
    if isinstance(claim, list) and isinstance(value, list):
        return len(claim) == len(value) and all(map(same_json, claim, value))
    numbers = (int, float)
    if isinstance(claim, numbers) and isinstance(value, numbers):
        return not isinstance(claim, bool) and not isinstance(value, bool) and claim == value
    return False


__all__ = ["AUTO", "CLASS", "GROUP", "LEVELS", "RANK_TOL", "SAMPLE", "ClassLevel",
           "GroupLevel", "Level", "SampleLevel", "choose", "get_level", "same_json"]
