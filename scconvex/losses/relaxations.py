"""Constraint sets of the convex relaxation as objects, looked up by name (``spec.relaxation``).

Each relaxation supplies what differs between constraint sets:

* ``make_feasible``: the extra step of the feasibility repair (applied before the repair
  mixes the point with the all-orthogonal geometry, which keeps it);
* ``violation``: how far a point is outside the extra cone (0 for the elliptope);
* ``cvxpy_constraints``: the extra cvxpy constraints on the model variable;
* ``dense_multipliers`` / ``block_multipliers``: candidate non-negative multipliers ``Y``
  of the extra cone for the certificate (MATH.md section 8, ``docs/variants.md``);
* ``report``: extra JSON fields of a result (the non-negative factor of the DNN optimum).

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

    def report(self, result) -> dict:
        """Extra JSON fields for a solve result."""
        return {}

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
        # within-class one, so the orthogonal frame (block-diagonal ones at sample level)
        # minimises them over the box of cosines in [0, 1], which contains this set
        # (docs/variants.md). The certificate checks it on every instance.
        return model.identity()

    def report(self, result) -> dict:
        M = result.class_gram
        if M is None:
            return {}
        H, residual = nonnegative_factor(M)
        return {"nonnegative_factor": {
            "found": H is not None, "dimension": None if H is None else int(H.shape[1]),
            "residual": residual}}


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
    "elliptope": Relaxation("elliptope", "PSD with unit diagonal (unit-norm features)"),
    "dnn": DoublyNonnegative("dnn", "PSD, unit diagonal and entrywise >= 0 "
                             "(non-negative, e.g. ReLU, features)"),
}
"""Relaxation objects by name (the values of ``ProblemSpec.relaxation``)."""


def get_relaxation(name: str) -> Relaxation:
    """The relaxation object registered as ``name``."""
    return lookup(RELAXATIONS, name, "relaxation")
