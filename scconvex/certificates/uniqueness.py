"""The exact curvature of the block-form SC loss over the cosines (a diagnostic).

The proven statements about the optimal cosines, their intervals and the uniqueness of
the optimum, are in :mod:`scconvex.certificates.bars` (docs/theory.md section 10): they
superseded the quadratic-model estimate this module used to make. What is left is the
dense Hessian of the excess loss (relative to it) over the cosines that enter the loss,
``O(P^2)`` memory for ``P`` such cosines: an independent check of the floors the bars
use (``tests/test_bars.py``) and a tool to look at the flattest direction of a problem.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import eigh

from ..losses.sc import block_terms
from ..problem.model import Model

MAX_PAIRS = 600
"""The Hessian is dense over cosine pairs; above this many pairs (about 34 blocks) it is
not formed."""


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
