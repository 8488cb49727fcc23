"""The supervised contrastive loss and its gradients, in numpy (MATH.md sections 2 and 4).

Two forms are implemented:

* the **sample form** on features ``H`` of shape ``(n, d)`` or on a Gram matrix ``G``
  of shape ``(n, n)``: the exact loss of MATH.md section 2, for any labels;
* the **block form** on a collapsed geometry, where classes are gathered in blocks of
  ``m_p`` classes that hold ``s_p`` samples each, and ``B`` is the ``g x g`` matrix of
  cosines (``B[p, p]`` between two different classes of block ``p``, ``B[p, q]`` between
  classes of blocks ``p != q``). With one class per block (``m_p = 1``) ``B`` *is* the
  class-mean Gram matrix ``M`` of the class level; with one block per distinct count it is
  the group level. The block form is evaluated relative to the constant
  ``sum_c n_c log(n_c - 1)`` in log space, so that the geometry stays determined at small
  temperatures (MATH.md section 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from ..errors import InvalidInputError
from ..problem.spec import check_tau

_UNIT_TOL = 1e-6

MIN_SAMPLE_TAU = 1e-300
"""Smallest ``tau`` of the sample form: differences of logits ``h_i.h_j / tau`` reach
``4 / tau`` in the log-sum-exp, which must stay finite in float64."""


def _sample_tau(tau) -> float:
    tau = check_tau(tau)
    if tau < MIN_SAMPLE_TAU:
        raise InvalidInputError(f"tau = {tau:g} is below {MIN_SAMPLE_TAU:g}: the logits "
                                "h_i.h_j / tau overflow float64")
    return tau


# ---------------------------------------------------------------------- validation
def _as_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise InvalidInputError(f"labels must have shape ({n},), got {labels.shape}")
    return labels


def _as_finite(x, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != ndim:
        raise InvalidInputError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{name} contains non-finite values")
    return x


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
    G = _as_finite(G, "G", 2)
    if G.shape[0] != G.shape[1]:
        raise InvalidInputError(f"G must be square, got shape {G.shape}")
    labels = _as_labels(labels, G.shape[0])
    tau = _sample_tau(tau)
    value, logits, lse, same, npos, active = _sample_terms(G, labels, tau)
    A = np.exp(logits - lse[:, None])
    A -= same / np.maximum(npos, 1)[:, None]
    A[~active] = 0.0
    A /= tau
    return value, 0.5 * (A + A.T)


def _features(H, normalize: bool) -> np.ndarray:
    H = _as_finite(H, "H", 2)
    norms = np.linalg.norm(H, axis=1)
    if normalize:
        if np.any(norms == 0):
            raise InvalidInputError("H has a zero row, which cannot be normalised")
        return H / norms[:, None]
    if np.any(np.abs(norms - 1) > _UNIT_TOL):
        worst = float(np.max(np.abs(norms - 1)))
        raise InvalidInputError(
            f"rows of H must have unit norm (largest deviation {worst:.2e}); "
            "pass normalize=True to normalise them")
    return H


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
    labels = _as_labels(labels, n)
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
    H = _features(H, normalize)
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
    H = _features(H, normalize=False)
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


@dataclass(frozen=True)
class BlockTerms:
    """Intermediate quantities of the block-form loss at one geometry.

    Attributes
    ----------
    value : float
        Loss ``L`` (including the constant ``sum n_c log(n_c - 1)``).
    excess : float
        ``L - sum n_c log(n_c - 1)``, computed without cancellation (it underflows to 0
        for ``tau`` below about 1e-3).
    log_excess : float
        ``log(excess)``, computed in log space: finite even where ``excess`` underflows.
    rowlse : ndarray, shape (g,)
        ``r_p = log( sum_q w_pq exp((B_pq - 1)/tau) / (s_p - 1) )`` (``-inf`` where
        ``s_p = 1``), so that an anchor of block ``p`` contributes ``log(s_p-1) +
        log1p(exp(r_p))``.
    sig : ndarray, shape (g,)
        ``sigmoid(r_p)``: the probability mass an anchor puts on other classes.
    prob : ndarray, shape (g, g)
        ``softmax_q`` of the row terms: the share of that mass on block ``q``.
    weights : ndarray, shape (g, g)
        ``w_pq``: samples of block ``q`` seen by an anchor of block ``p`` outside its class.
    """

    value: float
    excess: float
    log_excess: float
    rowlse: np.ndarray
    sig: np.ndarray
    prob: np.ndarray
    weights: np.ndarray


def block_weights(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``w_pq = m_q s_q`` for ``q != p`` and ``(m_p - 1) s_p`` on the diagonal."""
    w = np.broadcast_to((sizes * counts)[None, :], (len(sizes), len(sizes))).copy()
    w[np.diag_indices_from(w)] = (sizes - 1) * counts
    return w.astype(float)


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


def block_grad(terms: BlockTerms, sizes, counts, tau: float) -> np.ndarray:
    """Gradient of the block-form loss with respect to the entries of ``B``.

    Returns ``D`` with ``D[p, q] = dL/dB[p, q]`` treating the entries as independent
    (the row of block ``p`` only); the gradient along a symmetric perturbation ``E`` is
    ``sum(D * E)``. Diagonal entries of blocks with ``m_p = 1`` get zero.
    """
    sizes = np.asarray(sizes)
    counts = np.asarray(counts)
    return (sizes * counts * terms.sig)[:, None] * terms.prob / tau


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
    M = _as_finite(M, "M", 2)
    counts = np.asarray(counts)
    if M.shape != (len(counts), len(counts)):
        raise InvalidInputError(f"M must have shape ({len(counts)}, {len(counts)}), "
                                f"got {M.shape}")
    t = block_terms(M, np.ones(len(counts), dtype=int), counts, check_tau(tau))
    return t.excess if excess else t.value
