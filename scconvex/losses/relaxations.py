"""Constraint sets of the convex relaxation as objects, looked up by name (``spec.relaxation``).

Each relaxation supplies what differs between constraint sets:

* ``make_feasible``: the extra step of the feasibility repair (applied before the repair
  mixes the point with the all-orthogonal geometry, which keeps it);
* ``violation``: how far a point is outside the extra cone (0 for the elliptope);
* ``cvxpy_constraints``: the extra cvxpy constraints on the model variable;
* ``dense_multipliers`` / ``block_multipliers``: candidate non-negative multipliers ``Y``
  of the extra cone for the certificate (MATH.md section 8, ``docs/variants.md``);
* ``report``: extra JSON fields of a result (the non-negative factor of the DNN optimum,
  :class:`NonnegativeFactor`), which ``verify`` re-checks through ``load_factor``.

Registered (:data:`RELAXATIONS`): ``"elliptope"`` (PSD, unit diagonal) and ``"dnn"``
(doubly non-negative: also entrywise >= 0; the Gram of ReLU features).

Certificate with a multiplier. For convex ``f`` on ``{X PSD, diag X = 1, X >= 0}`` (size
``N``), any symmetric ``Y >= 0`` with zero diagonal, any ``nu`` and
``S = C - Diag(nu) - Y`` (``C`` the gradient at a feasible ``X``), every feasible ``Z``
has ``<S, Z> >= N min(0, lambda_min(S))`` and ``<Y, Z> >= 0``, so

    f(X) - f(Z) <= <C, X - Z> <= <S, X> + <Y, X> - N min(0, lambda_min(S)).

Any such ``Y`` gives a valid bound; the elliptope is the case ``Y = 0``. Each candidate
multiplier gives its own valid certificate, so the certifier may keep the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InvalidInputError, lookup

COMPLEMENTARITY_THRESHOLDS = (1e-9, 1e-6, 1e-3)
"""Entries of ``X`` at most this are treated as the zeros of the optimum when ``Y`` is built
on them (complementarity: ``Y_ij > 0`` only where ``X_ij = 0``); one candidate each."""


@dataclass(frozen=True)
class Relaxation:
    """The elliptope ``{X PSD, diag X = 1}``: no extra cone."""

    name: str
    description: str
    label: str = ""
    """How reports name the feature set (``"non-negative features (ReLU)"``)."""

    lowest_cosine = -1.0
    """The smallest cosine a feasible point can have (the cosine bars clip their boxes to
    it, :mod:`scconvex.certificates.bars`)."""
    pins_single_classes = True
    """Whether the KKT conditions fix the cosines between classes of one sample (they do on
    the elliptope, where the multiplier ``S`` is PSD with the gradient off its diagonal;
    docs/theory.md section 10.3)."""
    spheres = True
    """Whether the set is the elliptope itself, so that the non-convex solver on products
    of spheres (:mod:`scconvex.features.nonconvex`) explores exactly its rank-d points."""

    def make_feasible(self, model, X: np.ndarray) -> np.ndarray:
        """Project onto the extra cone (before the repair's mixing step); identity here."""
        return X

    def violation(self, model, X: np.ndarray) -> float:
        """Largest violation of the extra cone by the model variable ``X`` (0 if none)."""
        return 0.0

    def cvxpy_constraints(self, model, var) -> list:
        """Extra cvxpy constraints on the model variable."""
        return []

    def dense_multipliers(self, X: np.ndarray, C: np.ndarray) -> list[np.ndarray]:
        """Candidate multipliers ``Y`` (n x n) for a dense sample-level certificate."""
        return [np.zeros_like(C)]

    def block_multipliers(self, B: np.ndarray, gamma: np.ndarray) -> list[np.ndarray]:
        """Candidate per-sample-pair multipliers ``y`` (g x g, constant on blocks)."""
        return [np.zeros_like(gamma)]

    report_keys: ClassVar[tuple[str, ...]] = ()
    """Top-level keys that :meth:`report` adds to a certificate file (``verify`` checks
    them through :meth:`load_factor`)."""

    def report(self, result) -> dict:
        """Extra JSON fields for a solve result."""
        return {}

    def report_lines(self, result) -> list[str]:
        """Extra lines of the text report of a solve result."""
        return []

    def factor(self, model, X: np.ndarray):
        """Features of the kind the relaxation describes whose Gram is ``X`` (None: the
        relaxation adds nothing to the elliptope, any factor will do)."""
        return None

    def load_factor(self, model, data: dict):
        """The factor stored in a certificate file (None: this relaxation stores none)."""
        return None

    def closed_form(self, model) -> np.ndarray | None:
        """A point known to be optimal for this relaxation, if any (certified afterwards)."""
        return None


@dataclass(frozen=True)
class DoublyNonnegative(Relaxation):
    """``{X PSD, diag X = 1, X >= 0}``: the Gram matrices of non-negative (ReLU) features.

    At group level the constraint is ``B >= 0`` entrywise: the class Gram lifted from ``B``
    has exactly the entries of ``B`` (and ones on its diagonal). The group reduction stays
    exact because the set is invariant under permutations of classes (``docs/variants.md``).
    """

    lowest_cosine = 0.0
    # The multiplier of X >= 0 can cancel the gradient between a single-sample class and
    # the others, and then nothing pins the cosines between single-sample classes.
    pins_single_classes = False
    spheres = False
    report_keys = ("nonnegative_factor",)

    def make_feasible(self, model, X):
        return np.maximum(X, 0.0)

    def violation(self, model, X):
        return float(max(0.0, -float(np.min(X))))

    def cvxpy_constraints(self, model, var):
        return [var >= 0]

    def dense_multipliers(self, X, C):
        out = [np.zeros_like(C)]
        for thr in COMPLEMENTARITY_THRESHOLDS:
            Y = np.where(X <= thr, np.maximum(C, 0.0), 0.0)
            np.fill_diagonal(Y, 0.0)
            out.append(Y)
        return out

    def block_multipliers(self, B, gamma):
        return [np.zeros_like(gamma)] + [np.where(B <= thr, np.maximum(gamma, 0.0), 0.0)
                                         for thr in COMPLEMENTARITY_THRESHOLDS]

    def closed_form(self, model):
        # Both losses increase with every between-class cosine and decrease with every
        # within-class one, so the orthogonal frame minimises them over the box of cosines
        # in [0, 1], which contains this set; cosines between two single-sample classes
        # enter no term, and setting them to 1 gives the optimum with the fewest
        # non-negative dimensions (docs/variants.md, section 3.3). The certificate checks
        # it on every instance.
        X = model.identity()
        single = _row_counts(model) == 1
        # Rows of single-sample classes: one row each, or one block holding them all.
        if np.count_nonzero(np.asarray(model.spec.counts) == 1) >= 2:
            X[np.ix_(single, single)] = 1.0
        return X

    def factor(self, model, X: np.ndarray) -> NonnegativeFactor | None:
        """A non-negative factor of the model variable ``X`` (None when none is found).

        The factor has the block form of :class:`NonnegativeFactor`: ``shared`` is a
        non-negative factor of ``X`` itself (whose diagonal holds the within-block cosine
        of a block of several rows), and ``own`` tops each row of such a block up to unit
        length with a coordinate of its own.
        """
        X = np.asarray(X, dtype=float)
        sizes = _row_sizes(model)
        F, res = nonnegative_factor(X)
        if F is None:
            return None
        F = _prune(F, FACTOR_TOL - res)
        used = F > 0
        # A coordinate that only one row of a one-row block uses is that row's own: its
        # weight is all that matters (M = I becomes own = 1 and no shared coordinates).
        private = (np.sum(used, axis=0) == 1) & np.any(used & (sizes == 1)[:, None], axis=0)
        own = np.sqrt(np.sum(F[:, private] ** 2, axis=1))
        F = F[:, np.any(used, axis=0) & ~private]
        multi = sizes >= 2
        own[multi] = np.sqrt(np.maximum(1.0 - np.sum(F[multi] ** 2, axis=1), 0.0))
        out = NonnegativeFactor(own=own, shared=F, sizes=sizes)
        return out if out.residual(X) <= FACTOR_TOL else None

    def load_factor(self, model, data: dict) -> NonnegativeFactor | None:
        """The factor stored in a certificate file (None when the file says it has none).

        Raises
        ------
        InvalidInputError
            When the entry is malformed: not an object, ``found`` not a boolean, a
            claimed factor without its numbers, or numbers of the wrong shape.
        """
        entry = data.get(FACTOR_KEY)
        if entry is None:
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("found"), bool):
            raise InvalidInputError(f"{FACTOR_KEY!r} must be an object with a boolean "
                                    "'found'")
        unknown = sorted(set(entry) - {"found", "dimension", "residual", "own", "shared"})
        if unknown:
            raise InvalidInputError(f"{FACTOR_KEY!r} has unchecked fields {unknown}")
        if not entry["found"]:
            if entry.get("own") is not None or entry.get("shared") is not None:
                raise InvalidInputError(f"{FACTOR_KEY!r} says found: false but holds a "
                                        "factor")
            return None
        if entry.get("own") is None or entry.get("shared") is None:
            raise InvalidInputError(f"{FACTOR_KEY!r} says found: true but stores no factor "
                                    "('own' and 'shared')")
        sizes = _row_sizes(model)
        own = _numbers(entry.get("own"), f"{FACTOR_KEY}.own", (len(sizes),))
        raw = entry.get("shared")
        rows = raw if isinstance(raw, list) else None
        width = len(rows[0]) if rows and isinstance(rows[0], list) else 0
        shared = _numbers(raw, f"{FACTOR_KEY}.shared", (len(sizes), width))
        return NonnegativeFactor(own=own, shared=shared, sizes=sizes)

    def report(self, result) -> dict:
        X = result.variable
        if X is None:
            return {}
        F = self.factor(result.model, X)
        if F is None:
            return {FACTOR_KEY: {"found": False, "dimension": None}}
        return {FACTOR_KEY: F.to_dict(X)}

    def report_lines(self, result) -> list[str]:
        entry = self.report(result).get(FACTOR_KEY)
        if entry is None:
            return []
        if entry["found"]:
            return [f"  ReLU        features H >= 0 in d = {entry['dimension']} with H H^T = "
                    "the answer (in the JSON for verify)"]
        return ["  ReLU        no non-negative factor found: only the DNN lower bound is "
                "proven, not that ReLU features attain it"]


def _prune(F: np.ndarray, budget: float) -> np.ndarray:
    """``F`` without its weakest columns, as long as the Gram moves by at most ``budget``
    per entry (a column with largest entry ``f`` moves it by at most ``f^2``): a projected
    gradient leaves tiny positive entries in columns that the factor does not need."""
    peak = np.max(F, axis=0, initial=0.0) ** 2
    order = np.argsort(peak)
    drop = order[np.cumsum(peak[order]) <= 0.5 * max(budget, 0.0)]
    return np.delete(F, drop, axis=1)


FACTOR_KEY = "nonnegative_factor"
"""Where a certificate file of the ``dnn`` relaxation stores its non-negative factor."""

FACTOR_TOL = 1e-8
"""Largest entry of ``|H H^T - X|`` (and deviation of a feature's norm from 1) accepted for
a non-negative factor ``H`` of a stored geometry ``X``."""


def _row_counts(model) -> np.ndarray:
    """Samples per class of each row of the model variable (block, class or sample)."""
    if model.level.dense:
        return np.asarray(model.spec.counts)[model.spec.labels]
    return np.asarray(model.block_counts)


def _row_sizes(model) -> np.ndarray:
    """Rows of the Gram (classes, or samples at sample level) behind each row of the
    model variable: the classes of a block at group level, one otherwise."""
    if model.level.dense:
        return np.ones(model.dim, dtype=int)
    return np.asarray(model.sizes, dtype=int)


def _numbers(raw, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(raw, bool) or not isinstance(raw, list) or any(
            isinstance(x, bool) or (isinstance(x, list) and any(
                isinstance(y, bool) or not isinstance(y, (int, float)) for y in x))
            or not isinstance(x, (int, float, list)) for x in raw):
        raise InvalidInputError(f"{name} is not a list of numbers")
    try:
        A = np.array(raw, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(f"{name} is not a numeric array") from None
    if A.shape != shape and not (len(shape) == 2 and A.size == 0 and A.shape[:1] in
                                 ((shape[0],), (0,))):
        raise InvalidInputError(f"{name} has shape {A.shape}, expected {shape}")
    if A.size == 0 and len(shape) == 2:
        A = np.zeros((shape[0], 0))
    if not np.all(np.isfinite(A)):
        raise InvalidInputError(f"{name} has non-finite entries")
    return A


@dataclass(frozen=True, eq=False)
class NonnegativeFactor:
    """Non-negative features ``H >= 0`` whose Gram is a model variable, in block form.

    The rows of the Gram are classes (samples at sample level), grouped as the model's
    variable groups them (``sizes`` rows per block: the classes of a group at group level,
    one elsewhere). Row ``i`` of block ``p`` has the feature
    ``h_i = own_p e_i (+) shared_p``: a coordinate of its own with weight ``own_p``,
    followed by the block's shared coordinates. So ``h_i . h_j = shared_p . shared_q`` for
    two different rows of blocks ``p`` and ``q`` (the same block included), and
    ``|h_i|^2 = own_p^2 + |shared_p|^2``. ``M = I`` is ``own = 1`` and no shared
    coordinate; memory is ``O(g r)``, whatever ``k`` is.

    Attributes
    ----------
    own : ndarray, shape (g,)
    shared : ndarray, shape (g, r)
    sizes : ndarray of int, shape (g,)
    """

    own: np.ndarray
    shared: np.ndarray
    sizes: np.ndarray

    @property
    def dimension(self) -> int:
        """Coordinates the features use: one per row of a block with ``own > 0``, plus the
        shared coordinates that are non-zero somewhere."""
        return (int(np.sum(self.sizes[self.own > 0]))
                + int(np.count_nonzero(np.any(self.shared > 0, axis=0))))

    @property
    def min_entry(self) -> float:
        """Smallest entry of ``H`` (must be >= 0)."""
        return float(min(np.min(self.own, initial=0.0), np.min(self.shared, initial=0.0)))

    def norms(self) -> np.ndarray:
        """``|h_i|`` of the rows of each block."""
        return np.sqrt(self.own ** 2 + np.sum(self.shared ** 2, axis=1))

    def gram(self) -> np.ndarray:
        """The model variable of ``H H^T``, features scaled to unit length first (so it is
        exactly feasible for the ``dnn`` relaxation): off the diagonal and on the diagonal
        of blocks of several rows ``shared_p . shared_q / (|h_p| |h_q|)``, else 1."""
        norms = np.maximum(self.norms(), 1e-300)
        X = (self.shared @ self.shared.T) / np.outer(norms, norms)
        single = np.flatnonzero(self.sizes == 1)
        X[single, single] = 1.0
        return X

    def residual(self, X: np.ndarray) -> float:
        """Largest of ``|H H^T - X|`` (unscaled features) and ``| |h_i| - 1 |``."""
        G = self.shared @ self.shared.T
        single = np.flatnonzero(self.sizes == 1)
        G[single, single] += self.own[single] ** 2
        off = np.abs(G - X)
        return float(max(np.max(off, initial=0.0), np.max(np.abs(self.norms() - 1.0),
                                                            initial=0.0)))

    def to_dict(self, X: np.ndarray) -> dict:
        """The JSON entry: ``found``, ``dimension``, ``residual`` against ``X``, ``own``
        and ``shared``."""
        return {"found": True, "dimension": self.dimension, "residual": self.residual(X),
                "own": self.own.tolist(), "shared": self.shared.tolist()}


def nonnegative_factor(M: np.ndarray, *, tol: float = 1e-8, max_iter: int = 2000):
    """Try to write ``M = H H^T`` with ``H >= 0`` (a completely positive factorisation).

    Two starts, each refined by projected gradient with backtracking on
    ``||H H^T - M||_F^2``: the non-negative part of the PSD square root of ``M`` (exact
    for ``M = I`` and close to exact near it) and the absolute value of the eigen-factor
    (exact when ``M`` is a direct sum of all-ones blocks). Finding none does not prove
    that none exists.

    Returns
    -------
    H : ndarray of shape (k, r) or None
        A non-negative factor with ``max |H H^T - M| <= tol``, or None.
    residual : float
        ``max |H H^T - M|`` of the best factor tried.
    """
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise InvalidInputError(f"M must be square, got shape {M.shape}")
    H = _indicator_factor(M, tol)
    if H is not None:
        # H H^T without the product: H has at most one 1 per row.
        block = np.full(len(H), -1)
        rows, cols = np.nonzero(H)
        block[rows] = cols
        same = (block[:, None] == block[None, :]) & (block >= 0)[:, None]
        res = float(np.max(np.abs(same - M), initial=0.0))
        if res <= tol:
            return H, res
    M = 0.5 * (M + M.T)
    lam, V = np.linalg.eigh(M)
    root = np.sqrt(np.maximum(lam, 0.0))
    keep = lam > 1e-10 * max(float(lam[-1]), 1e-300)
    best_H, best_res = None, np.inf
    for H in (np.maximum((V * root) @ V.T, 0.0), np.abs(V[:, keep] * root[keep])):
        H, res = _refine(H, M, tol, max_iter)
        if res < best_res:
            best_H, best_res = H, res
    return (best_H if best_res <= tol else None), float(best_res)


def _indicator_factor(M: np.ndarray, tol: float = 1e-10) -> np.ndarray | None:
    """The factor of a matrix of zeros and ones (each up to ``tol``) that is a direct sum
    of all-ones blocks (after a permutation), with zero rows allowed: the indicator of the
    blocks. None for any other matrix. This is the form of every closed-form ``dnn``
    optimum (the repair may move its ones by rounding), and it needs no eigenvalue problem
    (``k = 10^5`` classes cost ``O(k^2)`` comparisons)."""
    ones = np.abs(M - 1.0) <= tol
    if not np.all(ones | (np.abs(M) <= tol)):
        return None
    on = np.diag(ones)
    if np.any(ones[~on]) or np.any(ones[:, ~on]):
        return None
    rows = np.flatnonzero(on)
    if rows.size == 0:
        return np.zeros((len(M), 0))
    sub = ones[np.ix_(rows, rows)]
    first = np.argmax(sub, axis=1)  # the first row of each row's block
    if not np.array_equal(sub, first[:, None] == first[None, :]):
        return None
    labels, block = np.unique(first, return_inverse=True)
    H = np.zeros((len(M), len(labels)))
    H[rows, block] = 1.0
    return H


def _refine(H: np.ndarray, M: np.ndarray, tol: float, max_iter: int):
    def cost(X):
        R = X @ X.T - M
        return float(np.sum(R * R)), R

    f, R = cost(H)
    step = 1.0
    for _ in range(max_iter):
        if np.max(np.abs(R)) <= tol:
            break
        grad = 4.0 * R @ H
        while step > 1e-12:
            trial = np.maximum(H - step * grad, 0.0)
            f_new, R_new = cost(trial)
            if f_new < f:
                H, f, R = trial, f_new, R_new
                step *= 2.0
                break
            step *= 0.5
        else:
            break
    return H, float(np.max(np.abs(R)))


RELAXATIONS: dict[str, Relaxation] = {
    "elliptope": Relaxation("elliptope", "PSD with unit diagonal (unit-norm features)",
                            "unit-norm features"),
    "dnn": DoublyNonnegative("dnn", "PSD, unit diagonal and entrywise >= 0 "
                             "(non-negative, e.g. ReLU, features)",
                             "non-negative features (ReLU)"),
}
"""Relaxation objects by name (the values of ``ProblemSpec.relaxation``)."""


def get_relaxation(name: str) -> Relaxation:
    """The relaxation object registered as ``name``."""
    return lookup(RELAXATIONS, name, "relaxation")
