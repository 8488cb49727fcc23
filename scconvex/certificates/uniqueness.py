"""Is the optimal geometry determined? Singleton classes and flat losses.

A certificate proves that the *loss* of an answer is within its gap of the optimum. Whether
that pins down the *cosines* is a separate question, with two ways to fail:

* **Not unique.** Classes of one sample have no anchor, so the cosine between two such
  classes enters no term of the loss: only the PSD constraint touches it. Given the optimal
  cosines of the other classes, the class Gram ``M`` is fixed on every pair with a class of
  two or more samples (the loss is strictly convex in those entries, MATH.md section 4:
  each is an argument of some ``log(n_c - 1 + sum exp)`` term), and the cosines among
  singleton classes may take any value that keeps ``M`` PSD. With ``A`` the Gram of the
  other classes and ``c_i`` the cosines of singleton ``i`` to them, singleton ``i`` keeps a
  free component of squared length ``r_i = 1 - c_i^T A^+ c_i``; the cosine of two
  singletons ``i, j`` can move by ``sqrt(r_i r_j)`` either way. If two singletons have
  ``r_i > 0`` the optimum is not unique.
* **Not determined in float64.** Where the loss is nearly flat along some direction (a huge
  imbalance ratio puts tiny weights on the minority cosines; a huge ``tau`` makes the loss
  almost linear), a point within the certified gap can be far from the optimum. With
  ``mu`` the smallest curvature of the excess loss (relative to it) over the cosines that
  enter the loss and ``e`` the certified gap relative to the excess, a point within the
  gap lies within about ``sqrt(2 e / mu)`` of the optimum along that direction: a
  quadratic model, an *estimate* rather than a proof.

:func:`assess` reports both, for class- and group-level variables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh

from ..losses.sc import block_terms
from ..problem.model import Model, block_gram

RESOLUTION_TOL = 1e-3
"""Cosines estimated to move by more than this within the certified gap are reported as not
determined."""

SINGLETON_TOL = 1e-6
"""A singleton class whose free squared component ``r_i`` exceeds this counts as free."""

MAX_PAIRS = 600
"""The curvature is computed on a dense Hessian over cosine pairs; above this many pairs
(about 34 blocks) it is not assessed (``resolution`` is nan)."""

_FLOOR = 64 * np.finfo(float).eps
"""Relative resolution of the excess loss itself: a gap below it means nothing more."""


@dataclass(frozen=True)
class Uniqueness:
    """Whether the cosines of an answer are determined.

    Attributes
    ----------
    unique : bool
        False when some cosines do not enter the loss and are not fixed by the PSD
        constraint, or when the loss is too flat to pin them to :data:`RESOLUTION_TOL`.
    resolution : float
        Estimated largest cosine change within the certified gap along the flattest
        direction of the loss (nan if not assessed, inf if the loss is flat).
    free_pairs : int
        Pairs of singleton classes whose cosine is free.
    note : str
        One sentence for the message; empty when the cosines are determined.
    """

    unique: bool
    resolution: float
    free_pairs: int
    note: str

    def to_dict(self) -> dict:
        return {"unique": self.unique, "resolution": self.resolution,
                "free_pairs": self.free_pairs, "note": self.note}


def free_singletons(model: Model, B: np.ndarray) -> tuple[int, float]:
    """Number of singleton-class pairs with a free cosine, and the widest free range.

    Works on the block Gram ``Q`` (the class Gram at class level): at group level every
    class of one sample is a block of its own (:func:`scconvex.problem.model.build_model`).
    """
    single = model.block_counts == 1
    if np.sum(single) < 2:
        return 0, 0.0
    Q = block_gram(B, model.sizes)
    rest = ~single
    A = Q[np.ix_(rest, rest)]
    C = Q[np.ix_(rest, single)]
    coef = np.linalg.lstsq(A, C, rcond=1e-10)[0] if np.any(rest) else np.zeros_like(C)
    r = np.clip(1.0 - np.einsum("ij,ij->j", C, coef), 0.0, 1.0)
    free = r > SINGLETON_TOL
    nfree = int(np.sum(free))
    if nfree < 2:
        return 0, 0.0
    top = np.sort(r[free])[-2:]
    return nfree * (nfree - 1) // 2, float(2.0 * math.sqrt(top[0] * top[1]))


def relative_hessian(model: Model, B: np.ndarray):
    """Hessian of ``excess / excess(B)`` over the cosines that enter the loss.

    Returns
    -------
    H : ndarray, shape (P, P), or None
        None when no cosine enters the loss or there are more than :data:`MAX_PAIRS`.
    pairs : tuple of ndarray
        ``(rows, cols)``: the block entries ``B_pq``, ``p <= q``, in the order of ``H``.
    """
    m = model.sizes
    s = model.block_counts
    g = model.dim
    tau = model.spec.tau
    active = s >= 2
    # Pairs p <= q that enter the loss: not two singleton classes, and a diagonal entry
    # only inside a block of several classes.
    enters = np.triu(active[:, None] | active[None, :])
    enters[np.diag_indices(g)] &= m >= 2
    rows, cols = np.nonzero(enters)
    if rows.size == 0 or rows.size > MAX_PAIRS:
        return None, (rows, cols)
    index = np.full((g, g), -1)
    index[rows, cols] = np.arange(rows.size)
    index = np.maximum(index, index.T)
    terms = block_terms(B, m, s, tau)
    H = np.zeros((rows.size, rows.size))
    w = terms.weights
    for p in np.flatnonzero(active):
        q = np.flatnonzero(w[p] > 0)
        idx = index[p, q]
        # Row p is m_p s_p log(1 + sum_q exp(z_pq)); its Hessian in z is diag(pi) - pi pi^T
        # with pi the shares of the row's sum, and dz/dB = 1/tau. Divided by the excess,
        # with sig_p / excess formed in log space: both underflow at small tau.
        rel = math.exp(-float(np.logaddexp(0.0, -terms.rowlse[p])) - terms.log_excess)
        prob = terms.prob[p, q]
        H[np.ix_(idx, idx)] += (m[p] * s[p] * rel / tau**2) * (
            np.diag(prob) - terms.sig[p] * np.outer(prob, prob))
    return H, (rows, cols)


def relative_curvature(model: Model, B: np.ndarray) -> float:
    """Smallest eigenvalue of :func:`relative_hessian` (inf if no cosine enters the loss,
    nan above :data:`MAX_PAIRS`)."""
    H, (rows, _) = relative_hessian(model, B)
    if H is None:
        return math.inf if rows.size == 0 else math.nan
    return float(eigh(H, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0])


def assess(model: Model, B: np.ndarray, excess_gap: float) -> Uniqueness:
    """Assess a class- or group-level answer ``B`` whose certified gap relative to the
    excess loss is ``excess_gap`` (see the module docstring)."""
    npairs, width = free_singletons(model, B)
    mu = relative_curvature(model, B)
    gap = max(float(excess_gap), _FLOOR) if math.isfinite(excess_gap) else math.inf
    if math.isnan(mu):
        resolution = math.nan
    elif mu <= 0:
        resolution = math.inf
    else:
        resolution = math.sqrt(2.0 * gap / mu)
    notes = []
    if npairs:
        notes.append(f"not unique: {npairs} cosine(s) between classes of one sample enter "
                     f"no term of the loss and can move over a range up to {width:.3g} "
                     "without changing it; the printed values are one optimum of many")
    if resolution >= 2.0:
        notes.append("not determined: the loss is flat to float64 precision along some "
                     "direction, so the certified gap does not pin the cosines down at all")
    elif resolution > RESOLUTION_TOL:
        notes.append(f"not determined: the loss is so flat that cosines within the "
                     f"certified gap may differ from the optimum by about {resolution:.2g}")
    return Uniqueness(not notes, resolution, npairs, "; ".join(notes))
