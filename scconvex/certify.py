"""Stage 4b of the pipeline: solver-independent optimality certificates (MATH.md section 5).

For a convex ``f`` on the elliptope ``E = {X PSD, diag X = 1}`` of size ``N`` and a point
``X`` with unit diagonal, let ``C`` be the symmetric gradient of ``f`` at ``X``,
``nu_i = (C X)_ii`` and ``S = C - Diag(nu)``. Convexity gives, for every feasible ``Y``,

    f(Y) >= f(X) - <S, X> + N min(0, lambda_min(S)),

so ``lower_bound = f(X) - <S, X> + N min(0, lambda_min(S))`` is a certified lower bound on
the optimum and ``gap = f(X) - lower_bound`` bounds the sub-optimality of ``X`` whenever
``X`` is feasible. Nothing here depends on the solver that produced ``X``.

At class and group level both the class-level certificate (over k x k class Grams) and the
sample-level certificate of the lifted, class-collapsed Gram (over all n x n Grams, which
also proves that collapse is optimal) are computed from the block structure in O(g^3) time
and O(g^2) memory, whatever n and k are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .loss import block_terms, sc_loss_gram_grad
from .model import Model
from .repair import block_min_eig


@dataclass(frozen=True)
class Certificate:
    """A duality-gap certificate.

    Attributes
    ----------
    level : {"class", "sample"}
        The elliptope over which optimality is certified (k x k or n x n Grams).
    size : int
        Its side ``N``.
    loss : float
        Loss at the certified point.
    excess_loss : float
        ``loss - sum n_c log(n_c - 1)``, computed without cancellation at class and group
        level.
    lower_bound : float
        Certified lower bound on the minimum over the elliptope.
    gap : float
        ``loss - lower_bound`` (>= 0 up to rounding).
    rel_gap : float
        ``gap / |loss|``.
    excess_gap : float
        ``gap / (loss - sum n_c log(n_c - 1))``: the gap relative to the part of the loss
        that depends on the geometry, meaningful at small ``tau``.
    min_eig_slack : float
        ``lambda_min(S)``; negative values enter the gap.
    complementarity : float
        ``<S, X>``, zero up to rounding by construction.
    """

    level: str
    size: int
    loss: float
    excess_loss: float
    lower_bound: float
    gap: float
    rel_gap: float
    excess_gap: float
    min_eig_slack: float
    complementarity: float

    def to_dict(self) -> dict:
        """The fields as a plain dictionary."""
        return asdict(self)


def dense_rounding(n: int, tau: float) -> float:
    """Bound on the float64 rounding of the dense sample-level loss and certificate terms.

    Each of the ``n`` anchor terms is a log-sum-exp of size up to ``1/tau + log n``, and so
    is each row of ``S`` (``|C_ij|`` sums to at most ``2/tau`` per row), so the loss, the
    excess ``L - sum n_c log(n_c - 1)`` formed from it, ``<S, X>`` and ``n lambda_min(S)`` are
    each known to about ``n eps (1/tau + log n)``; 16 times that is the allowance.
    """
    return 16.0 * np.finfo(float).eps * n * (1.0 / tau + math.log(n))


def _make(level, size, loss, excess, compl, lam, unit: float = 1.0,
          rounding: float = 0.0) -> Certificate:
    """Assemble a certificate from ``<S, X>`` and ``lambda_min(S)`` given in ``unit``s.

    The gap is formed from the slack terms alone, never as ``loss - lower_bound``: at small
    tau the loss is ~1e30 times the gap and that difference would round to zero. At class
    and group level ``S`` is computed divided by the excess loss (``unit = excess``), so
    the gap relative to the excess stays exact even where the excess itself underflows.
    The dense sample-level form adds its ``rounding`` allowance to the gap and takes it off
    the excess, so that the excess-relative gap stays an upper bound where the excess is a
    cancelling difference (small tau).
    """
    scaled = max(compl - size * min(0.0, lam), 0.0)
    gap = scaled * unit + rounding
    lower = loss - gap
    rel = gap / abs(loss) if loss != 0 else (0.0 if gap == 0 else math.inf)
    if unit != 1.0:
        ex = scaled
    else:
        # The excess is positive in exact arithmetic; below the rounding it is not resolved.
        ex = gap / (excess - rounding) if excess > rounding else math.inf
    return Certificate(level, int(size), float(loss), float(excess), float(lower), float(gap),
                       float(rel), float(ex), float(lam * unit), float(compl * unit))


def certify(model: Model, X: np.ndarray) -> tuple[Certificate, Certificate]:
    """Certificates of a feasible model variable.

    Parameters
    ----------
    model : Model
    X : ndarray
        Feasible variable of the model (``G`` at sample level, ``B`` otherwise), e.g. the
        output of :func:`scconvex.repair.repair`.

    Returns
    -------
    level_cert : Certificate
        Over class Grams (k x k) at class and group level; over sample Grams at sample level.
    sample_cert : Certificate
        Over sample Grams (n x n): proves the global optimum of the full relaxation.

    Examples
    --------
    >>> import numpy as np
    >>> from scconvex.spec import ProblemSpec
    >>> from scconvex.model import build_model
    >>> model = build_model(ProblemSpec((5, 5, 5), 0.5), "class")
    >>> etf = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    >>> cls_cert, smp_cert = certify(model, etf)
    >>> cls_cert.rel_gap < 1e-12 and smp_cert.rel_gap < 1e-12
    True
    """
    spec = model.spec
    if model.level == "sample":
        value, C = sc_loss_gram_grad(X, spec.labels, spec.tau)
        nu = np.sum(C * X, axis=1)
        S = C - np.diag(nu)
        lam = float(np.linalg.eigvalsh(S)[0])
        cert = _make("sample", spec.n, value, value - spec.constant, float(np.sum(S * X)), lam,
                     rounding=dense_rounding(spec.n, spec.tau))
        return cert, cert

    m = model.sizes.astype(float)
    s = model.block_counts.astype(float)
    tau = spec.tau
    terms = block_terms(X, model.sizes, model.block_counts, tau)
    active = s >= 2
    # Everything below is linear in sig; dividing it by the excess in log space keeps the
    # slack finite at temperatures where the excess underflows (MATH.md section 6).
    sig = np.zeros_like(s)
    sig[active] = np.exp(-np.logaddexp(0.0, -terms.rowlse[active]) - terms.log_excess)
    unit = terms.excess if terms.excess > 0 else 0.0
    D = (m * s * sig)[:, None] * terms.prob / tau
    w = terms.weights
    # Per sample-pair gradient entries (one anchor row); symmetrised below.
    per_pair = np.divide(D, (m * s)[:, None] * w, out=np.zeros_like(D), where=w > 0)
    gamma = 0.5 * (per_pair + per_pair.T)
    gamma_in = np.zeros_like(s)
    gamma_in[active] = -sig[active] / (tau * (s[active] - 1))
    # mult[p, q]: classes of block q seen from one class of block p (itself excluded).
    mult = np.broadcast_to(m[None, :], gamma.shape).copy()
    mult[np.diag_indices_from(mult)] = m - 1
    off = mult * X

    # Class level: C between classes of blocks p, q is s_p s_q gamma_pq.
    K = np.outer(s, s) * gamma
    nu_c = np.sum(off * K, axis=1)
    lam_c = block_min_eig(-nu_c, np.diag(K), K, model.sizes)
    compl_c = float(np.sum(m * (-nu_c + np.sum(off * K, axis=1))))
    cls = _make("class", spec.k, terms.value, terms.excess, compl_c, lam_c, unit)

    # Sample level: nested blocks, samples within classes within groups.
    nu_s = (s - 1) * gamma_in + np.sum(off * (s[None, :] * gamma), axis=1)
    t_diag = (s - 1) * gamma_in - nu_s
    root = np.sqrt(s)
    lam_s = block_min_eig(t_diag, s * np.diag(gamma), np.outer(root, root) * gamma, model.sizes)
    if np.any(active):
        lam_s = min(lam_s, float(np.min((-nu_s - gamma_in)[active])))
    compl_s = float(np.sum(m * s * (-nu_s + (s - 1) * gamma_in
                                     + np.sum(off * (s[None, :] * gamma), axis=1))))
    smp = _make("sample", spec.n, terms.value, terms.excess, compl_s, lam_s, unit)
    return cls, smp
