"""The supervised contrastive (SC) loss: all of its math in one place (MATH.md 2, 4 and 6).

The module owns every form of the L_out SC loss that the pipeline needs:

* the **sample form** on features ``H`` of shape ``(n, d)`` or on a Gram matrix ``G``
  of shape ``(n, n)``: the exact loss of MATH.md section 2, for any labels;
* the **block form** on a collapsed geometry, where classes are gathered in blocks of
  ``m_p`` classes that hold ``s_p`` samples each, and ``B`` is the ``g x g`` matrix of
  cosines (``B[p, p]`` between two different classes of block ``p``, ``B[p, q]`` between
  classes of blocks ``p != q``). With one class per block (``m_p = 1``) ``B`` *is* the
  class-mean Gram matrix ``M`` of the class level; with one block per distinct count it is
  the group level. The block form is evaluated relative to the constant
  ``sum_c n_c log(n_c - 1)`` in log space, so that the geometry stays determined at small
  temperatures (MATH.md section 6);
* its **cvxpy expressions** at block and sample level (:func:`sc_block_objective`,
  :func:`sc_block_linearised_objective`, :func:`sc_gram_objective`);
* its **native cost** :class:`LogExcessCost` (log of the excess loss in a block Gram,
  with its gradient, second derivative and a diagonal preconditioner);
* the loss object :class:`SupCon` that hands these to the pipeline
  (:class:`scconvex.losses.base.Loss`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from ..checks import check_tau
from ..errors import InvalidInputError
from .base import (
    BlockTerms,
    CurvatureRows,
    Loss,
    as_finite,
    as_labels,
    block_grad,
    block_weights,
    native_geometry,
    unit_rows,
)

__all__ = ["BlockTerms", "LogExcessCost", "SupCon", "block_grad", "block_loss",
           "block_terms", "block_weights", "class_loss", "log_softplus", "sc_loss",
           "sc_loss_grad", "sc_loss_gram", "sc_loss_gram_grad"]

MIN_SAMPLE_TAU = 1e-300
"""Smallest ``tau`` of the sample form: differences of logits ``h_i.h_j / tau`` reach
``4 / tau`` in the log-sum-exp, which must stay finite in float64."""


def _sample_tau(tau) -> float:
    tau = check_tau(tau)
    if tau < MIN_SAMPLE_TAU:
        raise InvalidInputError(f"tau = {tau:g} is below {MIN_SAMPLE_TAU:g}: the logits "
                                "h_i.h_j / tau overflow float64")
    return tau


# ---------------------------------------------------------------------- sample form
def _sample_terms(G: np.ndarray, labels: np.ndarray, tau: float):
    n = G.shape[0]
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    npos = same.sum(axis=1)
    logits = G / tau
    np.fill_diagonal(logits, -np.inf)
    lse = logsumexp(logits, axis=1)
    active = npos > 0
    pos_mean = np.zeros(n)
    pos_mean[active] = (np.where(same, G, 0.0).sum(axis=1)[active] / npos[active]) / tau
    value = float(np.sum((lse - pos_mean)[active]))
    return value, logits, lse, same, npos, active


def sc_loss_gram(G, labels, tau: float) -> float:
    """SC loss of a Gram matrix (MATH.md section 2).

    Parameters
    ----------
    G : array_like, shape (n, n)
        Gram matrix of the features (symmetric; the diagonal is not used).
    labels : array_like, shape (n,)
        Class label of each sample.
    tau : float
        Temperature, ``tau > 0``.

    Returns
    -------
    float
        ``L(G) = sum_i [LSE_{l != i}(G_il / tau) - mean_{j in P(i)} G_ij / tau]`` over the
        anchors ``i`` that have at least one positive.
    """
    return sc_loss_gram_grad(G, labels, tau)[0]


def sc_loss_gram_grad(G, labels, tau: float) -> tuple[float, np.ndarray]:
    """SC loss of a Gram matrix and its symmetric gradient.

    Returns
    -------
    value : float
    grad : ndarray, shape (n, n)
        Symmetric gradient ``C`` with ``dL = <C, dG>`` for symmetric ``dG``; its diagonal
        is zero because ``L`` does not depend on ``diag(G)``.
    """
    G = as_finite(G, "G", 2)
    if G.shape[0] != G.shape[1]:
        raise InvalidInputError(f"G must be square, got shape {G.shape}")
    labels = as_labels(labels, G.shape[0])
    tau = _sample_tau(tau)
    value, logits, lse, same, npos, active = _sample_terms(G, labels, tau)
    A = np.exp(logits - lse[:, None])
    A -= same / np.maximum(npos, 1)[:, None]
    A[~active] = 0.0
    A /= tau
    return value, 0.5 * (A + A.T)


CHUNK_BYTES = 1 << 26
"""Default memory for one block of rows of ``H H^T`` in :func:`sc_loss` and
:func:`sc_loss_grad` (64 MiB): ``chunk = CHUNK_BYTES // (8 n)`` rows at a time."""


def _chunk_rows(chunk: int | None, n: int) -> int:
    if chunk is None:
        return max(1, min(n, CHUNK_BYTES // (8 * n)))
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise InvalidInputError(f"chunk must be a positive integer, got {chunk!r}")
    return int(min(chunk, n))


def _class_structure(labels, n: int):
    """Class index of each sample and the number of positives of each anchor."""
    labels = as_labels(labels, n)
    _, y, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    return y, sizes[y] - 1


def _row_blocks(H: np.ndarray, tau: float, chunk: int):
    """Yield ``(i0, i1, P, lse)`` for row blocks of ``H H^T / tau`` with self-pairs left out.

    ``lse`` is the log-sum-exp of each row and ``P`` its softmax, computed in place in one
    ``chunk x n`` buffer: memory O(n d + n chunk), never O(n^2). (scipy's ``logsumexp``
    makes several temporaries of the block and is about 40 times slower here.)
    """
    n = H.shape[0]
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        P = H[i0:i1] @ H.T
        P *= 1.0 / tau
        P[np.arange(i1 - i0), np.arange(i0, i1)] = -np.inf
        top = np.max(P, axis=1)
        P -= top[:, None]
        np.exp(P, out=P)
        tot = np.sum(P, axis=1)
        P /= tot[:, None]
        yield i0, i1, P, top + np.log(tot)


def _positive_means(H: np.ndarray, y: np.ndarray, npos: np.ndarray):
    """``mean_{j in P(i)} h_j`` for every anchor (zero rows where ``P(i)`` is empty).

    The positives of ``i`` are its class minus itself, so their sum is the class sum minus
    ``h_i``: O(n d) instead of a pass over ``H H^T``.
    """
    sums = np.zeros((int(y.max()) + 1, H.shape[1]))
    np.add.at(sums, y, H)
    out = sums[y] - H
    active = npos > 0
    out[active] /= npos[active, None]
    out[~active] = 0.0
    return out


def sc_loss(H, labels, tau: float, *, normalize: bool = True,
            chunk: int | None = None) -> float:
    """Supervised contrastive loss of features, summed over anchors (MATH.md section 2).

    Parameters
    ----------
    H : array_like, shape (n, d)
        Features, one row per sample.
    labels : array_like, shape (n,)
        Class label of each sample.
    tau : float
        Temperature, ``tau > 0``.
    normalize : bool, default True
        If True, rows are scaled to unit norm first (a zero row is an error), as in the
        unconstrained features model. If False, rows must already have unit norm (within
        1e-6), and an error is raised otherwise.
    chunk : int, optional
        Rows of ``H H^T`` formed at a time (default: as many as fit in
        :data:`CHUNK_BYTES`). Memory is O(n d + n chunk), so real feature matrices
        (n = 1e5, d = 512) fit in a few GiB.

    Returns
    -------
    float
        ``sum_i 1/|P(i)| sum_{j in P(i)} -log(exp(h_i.h_j/tau) / sum_{l != i} exp(h_i.h_l/tau))``.
        Anchors without positives contribute zero. This equals ``n`` times the mean over
        all anchors used by the reference SupConLoss with ``base_temperature = tau``.

    Notes
    -----
    Each row block of ``H H^T / tau`` is reduced by log-sum-exp and dropped; the positive
    term needs only the class sums of ``H``. Large ``1/tau`` does not overflow.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    >>> round(sc_loss(H, [0, 0, 1, 1], tau=1.0), 6)  # 4 * log(1 + 2 exp(-2))
    0.958179
    """
    H = unit_rows(H, normalize)
    n = H.shape[0]
    tau = _sample_tau(tau)
    y, npos = _class_structure(labels, n)
    active = npos > 0
    if n < 2:
        return 0.0  # a single sample has no positive
    lse = np.empty(n)
    for i0, i1, _, block_lse in _row_blocks(H, tau, _chunk_rows(chunk, n)):
        lse[i0:i1] = block_lse
    pos = np.einsum("ij,ij->i", H, _positive_means(H, y, npos)) / tau
    return float(np.sum((lse - pos)[active]))


def sc_loss_grad(H, labels, tau: float, *,
                 chunk: int | None = None) -> tuple[float, np.ndarray]:
    """SC loss of unit-norm features and its Euclidean gradient with respect to ``H``.

    The gradient is that of ``H -> L(H H^T)`` (``2 C H``); project it onto the tangent
    space of the spheres for a Riemannian method. Rows must have unit norm. Memory is
    O(n d + n chunk), as for :func:`sc_loss`.

    Returns
    -------
    value : float
    grad : ndarray, shape (n, d)

    Notes
    -----
    With ``A`` the anchor-row gradient of MATH.md section 2 (softmax minus the positive
    weights, over ``tau``), ``2 C H = A H + A^T H``. The softmax part is accumulated row
    block by row block; the positive part is ``(class sum - h_i) / |P(i)|`` for both
    ``A`` and ``A^T``, because all anchors of a class have the same ``|P(i)|``.
    """
    H = unit_rows(H, normalize=False)
    n = H.shape[0]
    tau = _sample_tau(tau)
    y, npos = _class_structure(labels, n)
    active = npos > 0
    means = _positive_means(H, y, npos)
    if n < 2:
        return 0.0, np.zeros_like(H)
    lse = np.empty(n)
    grad = np.zeros_like(H)
    for i0, i1, P, block_lse in _row_blocks(H, tau, _chunk_rows(chunk, n)):
        lse[i0:i1] = block_lse
        P[~active[i0:i1]] = 0.0
        grad[i0:i1] += P @ H
        grad += P.T @ H[i0:i1]
    grad -= 2.0 * means
    grad /= tau
    value = float(np.sum((lse - np.einsum("ij,ij->i", H, means) / tau)[active]))
    return value, grad


CHUNK_ENTRIES = 2**21
"""Entries of the ``rows x n`` slab of logits that :func:`sc_sphere_value_grad` holds at
a time (16 MiB in float64): the n x n Gram is never formed."""


def sc_sphere_value_grad(H: np.ndarray, labels: np.ndarray,
                         tau: float) -> tuple[float, np.ndarray]:
    """SC loss of unit-norm features and a gradient exact along the spheres, in slabs.

    Samples must be listed class by class with labels ``0..k-1`` (as
    :attr:`ProblemSpec.labels`), rows of ``H`` of unit norm (not checked: this is the inner
    loop of the non-convex solver).

    Notes
    -----
    With unit rows ``G_ii = 1``, so the positive part of anchor ``i`` in class ``c`` is
    ``(h_i . S_c - 1) / ((n_c - 1) tau)``, ``S_c`` the sum of the class's features: over
    all anchors it is ``sum_c (|S_c|^2 - n_c) / ((n_c - 1) tau)``, with gradient
    ``2 S_c / ((n_c - 1) tau)`` on each row of class ``c`` (it differs from that of
    :func:`sc_loss_grad` by a multiple of ``h_i``, normal to the sphere). Only the
    log-sum-exp part needs all pairs: row ``i`` of the softmax ``P`` over ``l != i`` gives
    the gradient ``(P H + P^T H) / tau`` (anchors without positives contribute nothing:
    their rows of ``P`` are zero). Time ``O(n^2 d)``, dominated by one ``exp`` per pair;
    about 1.6 times faster than :func:`sc_loss_grad` (measured at n = 2000, d = 16).
    """
    counts = np.bincount(labels).astype(float)
    active = counts[labels] >= 2
    pos = counts >= 2
    denom = np.where(pos, counts - 1.0, 1.0)
    n = len(labels)
    step = max(1, min(n, CHUNK_ENTRIES // max(n, 1)))
    H = np.ascontiguousarray(H, dtype=float)
    S = np.zeros((len(counts), H.shape[1]))
    np.add.at(S, labels, H)
    sq = np.einsum("ij,ij->i", S, S)
    value = -float(np.sum(((sq - counts) / denom)[pos])) / tau
    grad = -(2.0 / tau) * (S / denom[:, None] * pos[:, None])[labels]
    Ht = H * (1.0 / tau)
    lse_total = 0.0
    for a in range(0, n, step):
        b = min(n, a + step)
        Z = H[a:b] @ Ht.T
        rows = np.arange(b - a)
        Z[rows, rows + a] = -np.inf
        zmax = np.max(Z, axis=1)
        Z -= zmax[:, None]
        np.exp(Z, out=Z)
        tot = np.sum(Z, axis=1)
        act = active[a:b]
        lse_total += float(np.sum((zmax + np.log(tot))[act]))
        # Softmax rows of active anchors, divided by tau for the gradient.
        Z *= (act / (tot * tau))[:, None]
        grad[a:b] += Z @ H
        grad += Z.T @ H[a:b]
    return value + lse_total, grad


# ---------------------------------------------------------------------- block form
def log_softplus(r: np.ndarray) -> np.ndarray:
    """``log(log1p(exp(r)))`` without underflow for very negative ``r``."""
    r = np.asarray(r, dtype=float)
    out = np.empty_like(r)
    low = r < -30.0
    # log1p(e^r) = e^r (1 - e^r / 2 + ...), so its log is r - e^r / 2 to O(e^{2r}).
    out[low] = r[low] - 0.5 * np.exp(r[low])
    out[~low] = np.log(np.logaddexp(0.0, r[~low]))
    return out


def block_terms(B, sizes, counts, tau: float) -> BlockTerms:
    """Evaluate the block-form loss (MATH.md section 4, group level).

    Parameters
    ----------
    B : array_like, shape (g, g)
        Symmetric cosines between class means (see the module docstring); the diagonal
        entries of blocks with ``m_p = 1`` are not used.
    sizes : array_like of int, shape (g,)
        ``m_p``, classes per block.
    counts : array_like of int, shape (g,)
        ``s_p``, samples per class of block ``p``.
    tau : float
        Temperature.

    Returns
    -------
    BlockTerms
    """
    B = np.asarray(B, dtype=float)
    sizes = np.asarray(sizes)
    counts = np.asarray(counts)
    w = block_weights(sizes, counts)
    active = counts >= 2
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    # Rows of single-sample classes are dropped; log(1) keeps their arithmetic finite.
    logbase = np.log(np.where(active, counts - 1.0, 1.0))
    z = logw + (B - 1.0) / tau - logbase[:, None]
    z[~active] = -np.inf
    rowlse = np.full(len(sizes), -np.inf)
    rowlse[active] = logsumexp(z[active], axis=1)
    prob = np.zeros_like(z)
    prob[active] = np.exp(z[active] - rowlse[active, None])
    sig = expit(rowlse)
    mass = sizes * counts
    excess = float(np.sum(mass[active] * np.logaddexp(0.0, rowlse[active])))
    log_excess = float(logsumexp(np.log(mass[active]) + log_softplus(rowlse[active])))
    const = float(np.sum(mass[active] * logbase[active]))
    return BlockTerms(const + excess, excess, log_excess, rowlse, sig, prob, w)


def block_loss(B, sizes, counts, tau: float) -> float:
    """Block-form loss ``L`` (see :func:`block_terms`)."""
    return block_terms(B, sizes, counts, tau).value


def class_loss(M, counts, tau: float, *, excess: bool = False) -> float:
    """Class-level loss of a class-mean Gram matrix (MATH.md section 4).

    Parameters
    ----------
    M : array_like, shape (k, k)
        Cosines between class means (symmetric; the diagonal is taken as 1).
    counts : array_like of int, shape (k,)
        Samples per class.
    tau : float
        Temperature.
    excess : bool, default False
        Return ``L - sum_c n_c log(n_c - 1)`` instead of ``L``.

    Returns
    -------
    float
        ``sum_{c: n_c >= 2} n_c log((n_c - 1) + sum_{c' != c} n_c' exp((M_cc' - 1)/tau))``.

    Examples
    --------
    >>> import numpy as np
    >>> M = np.full((3, 3), -0.5) + 1.5 * np.eye(3)   # simplex ETF
    >>> round(class_loss(M, [5, 5, 5], 0.5), 9)      # 15 log(4 + 10 exp(-3))
    22.554061551
    """
    M = as_finite(M, "M", 2)
    counts = np.asarray(counts)
    if M.shape != (len(counts), len(counts)):
        raise InvalidInputError(f"M must have shape ({len(counts)}, {len(counts)}), "
                                f"got {M.shape}")
    t = block_terms(M, np.ones(len(counts), dtype=int), counts, check_tau(tau))
    return t.excess if excess else t.value


# ---------------------------------------------------------------------- cvxpy
def sc_block_objective(model, B):
    """``(L - sum n_c log(n_c - 1)) / n`` of the SC loss in the block variable ``B``."""
    import cvxpy as cp

    g = model.dim
    m = model.sizes
    s = model.block_counts
    tau = model.spec.tau
    active = np.flatnonzero(s >= 2)
    w = block_weights(m, s)
    logbase = np.log(np.maximum(s - 1.0, 1.0))
    with np.errstate(divide="ignore"):
        logw = np.log(w) - logbase[:, None]
    # Every row gets a constant entry 0 (the n_c - 1 same-class positives, relative to
    # themselves). For blocks of one class the diagonal entry is not a term: B_pp is fixed
    # to 1 there, so that entry and the constant one each carry log(1/2) and add up to 1.
    const = np.zeros(g)
    single = m == 1
    const[single] = np.log(0.5)
    logw[single, single] = np.log(0.5)
    terms = cp.hstack([cp.reshape(cp.Constant(const), (g, 1), order="F"),
                       (B - 1.0) / tau + logw])
    weight = (m * s)[active].astype(float) * model.scale
    return weight @ cp.log_sum_exp(terms[active, :], axis=1)


def sc_block_linearised_objective(model, B):
    """Log of the linearised excess of the SC loss, ``log sum_p m_p s_p exp(r_p)``.

    With ``r_p`` the row log-sum-exp, the excess is ``sum_p m_p s_p log1p(exp(r_p))``.
    Where every ``exp(r_p)`` is tiny (small ``tau``) the excess is about ``1e-13`` at
    ``tau = 0.05``, and an interior-point method at absolute tolerances cannot resolve it.
    ``sum_p m_p s_p exp(r_p)`` differs from it by a factor ``1 + O(max exp(r_p))``, and its
    logarithm is one log-sum-exp of affine functions of ``B``, of order ``1 / tau``. Its
    minimiser is therefore within a relative ``O(max exp(r_p))`` of optimal for the true
    loss, which the certificate then measures exactly.
    """
    import cvxpy as cp

    g = model.dim
    m = model.sizes
    s = model.block_counts
    w = block_weights(m, s)
    rows, cols = np.nonzero((s[:, None] >= 2) & (w > 0))
    base = (np.log(w[rows, cols]) - np.log(s[rows] - 1.0)
            + np.log((m * s)[rows].astype(float)))
    # cvxpy's vec is column-major: entry (p, q) sits at q * g + p.
    z = (cp.vec(B, order="F")[cols * g + rows] - 1.0) / model.spec.tau + base
    return cp.log_sum_exp(z)


def sc_gram_objective(G, lab: np.ndarray, tau: float):
    """SC loss (up to a constant) of a symmetric cvxpy Gram expression with labels ``lab``."""
    import cvxpy as cp

    n = len(lab)
    rows = np.repeat(np.arange(n), n - 1)
    cols = np.delete(np.tile(np.arange(n), n), np.arange(n) * (n + 1))
    # cvxpy's vec is column-major; G is symmetric, so entry (i, l) sits at l * n + i.
    flat = cols * n + rows
    off = cp.reshape(cp.vec(G, order="F")[flat], (n, n - 1), order="C")
    same = lab[:, None] == lab[None, :]
    np.fill_diagonal(same, False)
    npos = same.sum(axis=1)
    active = np.flatnonzero(npos > 0)
    if active.size == 0:
        return 0
    W = np.zeros((n, n))
    W[active] = same[active] / npos[active, None]
    # Shifting by 1/tau keeps the exponents <= 0 (same value, better scaled).
    lse = cp.log_sum_exp((off[active, :] - 1.0) / tau, axis=1)
    pos = cp.sum(cp.multiply(W, G - 1.0)) / tau
    return cp.sum(lse) - pos


# ---------------------------------------------------------------------- native cost
def _dlog_softplus(r: np.ndarray) -> np.ndarray:
    """Derivative of :func:`~scconvex.losses.sc.log_softplus`: ``sigmoid(r) / log1p(exp(r))``."""
    out = np.empty_like(r)
    low = r < -30.0
    out[low] = 1.0 - 0.5 * np.exp(r[low])
    out[~low] = expit(r[~low]) / np.logaddexp(0.0, r[~low])
    return out


class LogExcessCost:
    """``F(Q) = log(excess loss)`` of a block Gram ``Q`` and its symmetric gradient: the
    SC loss's native cost (:class:`scconvex.losses.base.NativeCost`), with a second
    derivative (:meth:`hessian_operator`) and a diagonal preconditioner
    (:meth:`hess_diagonal`).

    With ``B`` the cosines of ``Q`` (:func:`scconvex.levels.blocks.from_block_gram`), anchor rows
    ``p`` with ``s_p >= 2`` have ``r_p = log(sum_q w_pq exp((B_pq - 1)/tau) / (s_p - 1))``
    and the excess is ``sum_p m_p s_p log1p(exp(r_p))`` (MATH.md sections 4 and 6).
    """

    def __init__(self, sizes: np.ndarray, counts: np.ndarray, tau: float) -> None:
        sizes = np.asarray(sizes, dtype=float)
        counts = np.asarray(counts, dtype=float)
        g = sizes.size
        self.g = g
        self.tau = tau
        self.sizes = sizes
        self.counts = counts
        active = counts >= 2
        self.active = np.flatnonzero(active)
        self.all_active = self.active.size == g
        # z_pq = B_pq / tau + log w_pq - log(s_p - 1) - 1 / tau with w_pq = m_q s_q off the
        # diagonal and (m_p - 1) s_p on it: a column term and a row term (no g x g
        # constant is stored). Rows of single-sample classes (no anchor) get a finite
        # row term and weight 0.
        self.col = np.log(sizes * counts)
        self.row = -np.log(np.where(active, counts - 1.0, 1.0)) - 1.0 / tau
        with np.errstate(divide="ignore"):
            # log(0) = -inf on the diagonal of one-class blocks: those terms vanish.
            self.diag_w = np.log((sizes - 1.0) * counts)
        self.logmass = np.where(active, np.log(sizes * counts), -np.inf)
        # A block of single-sample classes is one unit vector (native_geometry).
        geometry = native_geometry(sizes, counts)
        self.geometry = geometry
        self.sphere = geometry == 1
        self.class_level = bool(np.all(self.sphere))
        self.iroot = 1.0 / np.sqrt(geometry)
        self.free = np.flatnonzero(~self.sphere)
        self.free_den = geometry[self.free] - 1.0

    @property
    def invroot(self) -> np.ndarray:
        """``1 / sqrt(m_p m_q)`` as a ``g x g`` array (formed on demand)."""
        return np.multiply.outer(self.iroot, self.iroot)

    def _scale(self, A: np.ndarray, factor: float = 1.0) -> np.ndarray:
        """``A o (factor / sqrt(m_p m_q))``, a new array (two passes; ``factor`` alone at
        class level)."""
        out = np.multiply(A, (factor * self.iroot).astype(A.dtype)[:, None])
        out *= self.iroot.astype(A.dtype)[None, :]
        return out

    def cosines(self, Q: np.ndarray) -> np.ndarray:
        """``B`` from ``Q`` (the diagonal of one-class blocks is not used and left as is)."""
        if self.class_level:
            return Q
        B = self._scale(Q)
        B[self.free, self.free] = (Q[self.free, self.free] - 1.0) / self.free_den
        return B

    def __call__(self, Q: np.ndarray) -> tuple[float, np.ndarray]:
        """Return ``F`` and ``C = dF/dQ`` (symmetric, Frobenius pairing)."""
        F, C, _ = self.evaluate(Q)
        return F, C

    def evaluate(self, Q: np.ndarray) -> tuple[float, np.ndarray, tuple]:
        """``F``, ``C = dF/dQ`` and the intermediate quantities :meth:`hessian_operator`
        needs (the row softmax ``P`` of every row, zero on rows without an anchor)."""
        g, tau = self.g, self.tau
        z = self._scale(Q, 1.0 / tau)
        idx = np.diag_indices(g)
        diag = np.diag(Q) * (1.0 / tau)
        diag[self.free] = (np.diag(Q)[self.free] - 1.0) / (self.free_den * tau)
        z += self.col[None, :]
        z += self.row[:, None]
        z[idx] = diag + self.diag_w + self.row
        zmax = np.max(z, axis=1)
        z -= zmax[:, None]
        np.exp(z, out=z)
        tot = np.sum(z, axis=1)
        r = zmax + np.log(tot)
        t = self.logmass + log_softplus(r)
        tmax = float(np.max(t))
        F = tmax + math.log(float(np.sum(np.exp(t - tmax))))
        # z / tot is the softmax P of each anchor row; d F / d r_p = pi_p * dls_p and
        # d r_p / d B_pq = P_pq / tau, so P scaled by coef is the matrix of row partials.
        pi = np.exp(t - F)
        dls = _dlog_softplus(r)
        z *= (1.0 / tot)[:, None]
        if not self.all_active:
            z[~np.isfinite(self.logmass)] = 0.0
        coef = pi * dls / tau
        return F, self._to_q(z, coef), (z, pi, dls, expit(r))

    def _to_q(self, P: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """Symmetric ``Q``-gradient of the row partials ``D = coef o P`` (``dF/dB``):
        ``(D + D^T) o J / 2`` with ``J`` the derivative of the cosines in ``Q``
        (:func:`scconvex.levels.blocks.q_gradient`, without its ``g x g`` factor array)."""
        D = self._scale(P, 1.0) if not self.class_level else P.copy()
        D *= (0.5 * coef).astype(P.dtype)[:, None]
        dd = np.diag(P) * coef
        C = D + D.T
        C[np.diag_indices(self.g)] = 0.0
        C[self.free, self.free] = dd[self.free] / self.free_den
        return C

    def coarsened(self, sizes: np.ndarray, counts: np.ndarray) -> LogExcessCost:
        """The same cost for another partition (a coarser model, whose counts may be
        class-weighted means rather than integers: it only provides a start)."""
        return LogExcessCost(sizes, counts, self.tau)

    def astype(self, dtype: type) -> LogExcessCost:
        """A copy whose second derivatives (:meth:`hessian_operator`) run in ``dtype``.

        Only the constants that the operator multiplies by are converted, so that float32
        products stay float32 (Newton directions need no more; the cost, its gradient and
        the certificate stay in float64 on the original).
        """
        out = copy.copy(self)
        out.iroot = self.iroot.astype(dtype)
        out.free_den = self.free_den.astype(dtype)
        return out

    def hess_diagonal(self, C: np.ndarray) -> np.ndarray:
        """A positive approximation of the diagonal of ``D^2 F`` in ``Q`` at gradient ``C``.

        Each softmax entry curves by about its probability over ``tau`` relative to its
        slope, and ``Q_pq`` enters the cosines with the factor ``1 / sqrt(m_p m_q)`` (``1 /
        (m_p - 1)`` on the diagonal of a free block), which ``C`` carries once. The
        diagonal of a one-class block is fixed (any positive value will do).
        """
        D = self._scale(np.abs(C), 1.0 / self.tau)
        diag = np.ones(self.g)
        diag[self.free] = np.abs(np.diag(C)[self.free]) / (self.tau * self.free_den)
        D[np.diag_indices(self.g)] = diag
        # Entries below 1e-12 of the largest are at the rounding level of the gradient. A
        # higher floor hides genuinely flat directions: 1e-6 made them the soft end of
        # the spectrum and tripled the CG steps on the 8142-class long tail (measured).
        return np.maximum(D, 1e-12 * float(np.max(D)))

    def hess(self, state: tuple, E: np.ndarray) -> np.ndarray:
        """Second derivative ``D C [E]`` of ``F`` in ``Q`` along a symmetric ``E``
        (:meth:`hessian_operator` at ``state``, applied once)."""
        return self.hessian_operator(state)(E)

    def hessian_operator(self, state: tuple):
        """The map ``E -> D C [E]`` (second derivative of ``F`` in ``Q`` along a symmetric
        ``E``) at the point ``state`` describes, in the precision of ``state``.

        With ``P`` the row softmax, ``pi_p = exp(t_p - F)``, ``dls_p`` the slope of
        ``log softplus`` at ``r_p`` and ``sig_p = sigmoid(r_p)``: along ``dB = L(E)``
        (the linear part of :meth:`cosines`, ``dB = E o J`` with ``J`` the factor
        ``1 / sqrt(m_p m_q)``, or ``1 / (m_p - 1)`` on the diagonal of a free block),
        ``dz = dB / tau``, ``dr_p = sum_q P_pq dz_pq``, ``dt_p = dls_p dr_p``, ``dF = sum_p
        pi_p dt_p`` and the row coefficient ``a_p = pi_p dls_p`` moves by ``da_p = a_p
        (dt_p - dF) + a_p (1 - sig_p - dls_p) dr_p`` (``d dls / dr = dls (1 - sig -
        dls)``). The row partials ``D_pq = a_p P_pq / tau`` then move by ``(P_pq / tau)
        (a_p dz_pq + c_p)``, ``c_p = da_p - a_p dr_p``, and map to ``Q`` as ``(D + D^T) o
        J / 2`` (:func:`scconvex.levels.blocks.q_gradient`). With ``R = P o J / tau`` that is

            D C [E] = E o K + (R o c 1^T + R^T o 1 c^T) / 2,
            K = J o (R o a 1^T + R^T o 1 a^T) / (2 tau),   dr = rowsums(R o E),

        so that, once ``R``, ``R^T`` and ``K`` are formed (a few passes and one
        transpose), a product costs about six passes over ``g x g`` arrays and no
        transpose (measured at g = 2987, float32: ... ms against ... ms before).
        """
        P, pi, dls, sig = state
        dt = P.dtype
        g = self.g
        diag = np.zeros(g, dtype=dt)            # J on the diagonal
        diag[self.free] = 1.0 / self.free_den
        idx = np.diag_indices(g)
        R = self._scale(P, 1.0 / self.tau)
        R[idx] = np.diag(P) * diag / self.tau
        RT = np.ascontiguousarray(R.T)
        pi, dls, sig = (np.asarray(x, dtype=dt) for x in (pi, dls, sig))
        a = pi * dls
        K = np.multiply(R, a[:, None])
        K += RT * a[None, :]
        kd = np.diag(K) * diag * (0.5 / self.tau)
        K = self._scale(K, 0.5 / self.tau)
        K[idx] = kd
        curl = a * (1.0 - sig - dls)
        work = np.empty((g, g), dtype=dt)

        def apply(E: np.ndarray) -> np.ndarray:
            dr = np.einsum("ij,ij->i", R, E)
            dtt = dls * dr
            dF = float(pi @ dtt)
            c = 0.5 * (a * (dtt - dF) + curl * dr - a * dr)
            out = np.multiply(E, K)
            np.multiply(R, c[:, None], out=work)
            out += work
            np.multiply(RT, c[None, :], out=work)
            out += work
            return out

        return apply


# ---------------------------------------------------------------------- the loss object
@dataclass(frozen=True)
class SupCon(Loss):
    """The L_out SC loss (MATH.md sections 2 and 4), as a :class:`~scconvex.losses.base.Loss`."""

    batchable = True
    linearised = True

    def sample_value_grad(self, G, labels, tau):
        return sc_loss_gram_grad(G, labels, tau)

    def features_value(self, H, labels, tau):
        # In row blocks: the n x n Gram of a large sample-level point is never formed.
        return sc_loss(H, labels, tau, normalize=False)

    def sphere_value_grad(self, H, labels, tau):
        return sc_sphere_value_grad(H, labels, tau)

    def constant(self, counts, tau: float) -> float:
        return float(sum(c * math.log(c - 1) for c in counts if c >= 2))

    def block_terms(self, B, sizes, counts, tau):
        return block_terms(B, sizes, counts, tau)

    def curvature_rows(self, sizes, counts, tau):
        # log((s_p - 1) + sum_q w e^{(B - 1)/tau}) = log(s_p - 1) + log(1 + sum e^z).
        counts = np.asarray(counts, dtype=float)
        return CurvatureRows(np.log(np.where(counts >= 2, counts - 1.0, 1.0)), 1.0, True)

    def log_slope(self, r):
        return -np.logaddexp(0.0, -np.asarray(r, dtype=float))

    def cvxpy_block_objective(self, model, B):
        return sc_block_objective(model, B)

    def cvxpy_linearised_objective(self, model, B):
        return sc_block_linearised_objective(model, B)

    def cvxpy_gram_objective(self, G, labels, tau):
        return sc_gram_objective(G, labels, tau)

    def native_cost(self, model):
        return LogExcessCost(model.sizes, model.block_counts, model.spec.tau)
