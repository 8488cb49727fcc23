"""Loss variants as objects: one object per loss, looked up by name (``spec.loss``).

Each loss supplies, for the pipeline stages that differ between variants:

* its **sample form**: value and symmetric gradient of ``L(G)`` on an ``n x n`` Gram;
* its **block form** on a class-collapsed geometry (class and group level,
  :func:`block_terms` style): value, the *excess* over a geometry-independent lower bound
  (its :meth:`Loss.constant`), the log of that excess, the row softmax and the row slope,
  so that certificates and the native solver work in log space;
* the **cvxpy objectives** at block and sample level (divided by ``n``);
* the **native cost** ``cost(Q) -> (F, C)`` with ``F`` the log of the excess loss.

Two losses are registered (:data:`LOSSES`):

``"sc"``
    The L_out supervised contrastive loss (MATH.md section 2); it delegates to
    :mod:`scconvex.losses.sc` and the tuned native cost.
``"negatives-only"``
    The "decoupled" form: the denominator of anchor ``i`` runs over its negatives only
    (``l`` not in ``P(i)``, ``l != i``). Derivations in ``docs/variants.md``.

The block form of both is one template. An active anchor row ``p`` (``s_p >= 2``) has
``r_p = LSE_q( log w_pq - h_p + (B_pq - c) / tau )`` and contributes
``m_p s_p (base_p + phi(r_p))``, with

* SC: ``h_p = base_p = log(s_p - 1)``, ``c = 1``, ``phi = softplus``;
* negatives-only: ``h_p = log(n - s_p)``, ``base_p = log(n - s_p) - 2 / tau``,
  ``c = -1``, ``phi(r) = r`` (``r_p >= 0``: a weighted mean of ``exp((B + 1)/tau) >= 1``).

``sum_p m_p s_p base_p`` is the loss's constant, and the excess ``sum m_p s_p phi(r_p)``
is >= 0 on every feasible geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..errors import InvalidInputError, lookup
from ..problem.model import from_block_gram, q_gradient
from ..problem.spec import check_tau
from . import sc as _sc
from .sc import BlockTerms, block_weights


# ---------------------------------------------------------------------- base class
@dataclass(frozen=True)
class Loss:
    """A loss variant (see the module docstring). Subclasses fill in the hooks."""

    name: str
    description: str

    levels = ("group", "class", "sample")
    """Model levels at which the loss reduces exactly."""
    batchable = False
    """Whether a batch-wise version is supported (:mod:`scconvex.problem.batches`)."""

    # -- sample form
    def sample_value_grad(self, G, labels, tau: float) -> tuple[float, np.ndarray]:
        """Loss of a Gram matrix ``G`` (n x n) and its symmetric gradient (zero diagonal)."""
        raise NotImplementedError

    def sample_value(self, G, labels, tau: float) -> float:
        return self.sample_value_grad(G, labels, tau)[0]

    def features_value_grad(self, H, labels, tau: float) -> tuple[float, np.ndarray]:
        """Loss of unit-norm features ``H`` (n x d) and its Euclidean gradient ``2 C H``."""
        H = _sc._features(H, normalize=False)
        value, C = self.sample_value_grad(H @ H.T, labels, tau)
        return value, 2.0 * C @ H

    def features_value(self, H, labels, tau: float) -> float:
        """Loss of unit-norm features ``H`` (n x d): the value of :meth:`features_value_grad`."""
        H = _sc._features(H, normalize=False)
        return self.sample_value(H @ H.T, labels, tau)

    # -- block form
    def constant(self, counts, tau: float) -> float:
        """Geometry-independent lower bound ``sum_c n_c base_c`` of the loss."""
        raise NotImplementedError

    def attains_constant(self, G, labels) -> bool:
        """True when the feasible sample Gram ``G`` attains :meth:`constant` exactly.

        The constant is then the optimum and ``G`` proves it, with a gap of exactly 0. The
        dense loss cannot show this itself: its difference from the constant is only
        known up to rounding. False unless a loss can attain its constant.
        """
        return False

    def anchor_count(self, spec) -> int:
        """Number of anchor terms of the sample form (sizes the rounding allowance)."""
        return spec.n

    def gap_scale(self, value: float, excess: float) -> float:
        """Denominator of the loss-relative gap ``rel_gap`` (``|L|`` unless overridden)."""
        return abs(value)

    def block_terms(self, B, sizes, counts, tau: float) -> BlockTerms:
        """Block-form terms (:class:`scconvex.losses.sc.BlockTerms`); ``sig`` is ``phi'(r)``."""
        raise NotImplementedError

    def log_slope(self, r: np.ndarray) -> np.ndarray:
        """``log phi'(r)`` for active rows (used to scale certificates by the excess)."""
        raise NotImplementedError

    def block_grad(self, terms: BlockTerms, sizes, counts, tau: float) -> np.ndarray:
        """Row-wise ``dL/dB`` (see :func:`scconvex.losses.sc.block_grad`); same for all losses."""
        return _sc.block_grad(terms, sizes, counts, tau)

    # -- backends
    def cvxpy_block_objective(self, model, B):
        """cvxpy expression of the loss in the block variable ``B``, up to a positive factor
        and a constant (the solver's scaling, MATH.md section 6)."""
        raise NotImplementedError

    def cvxpy_sample_objective(self, model, G):
        """cvxpy expression of the loss in the sample Gram ``G`` (same conventions)."""
        raise NotImplementedError

    def native_cost(self, model):
        """Cost object for the native backend: ``cost(Q) -> (log excess, dF/dQ)``."""
        return BlockLogExcessCost(model, self)


# ---------------------------------------------------------------------- SC
@dataclass(frozen=True)
class SupCon(Loss):
    """The L_out SC loss (MATH.md sections 2 and 4); implemented in :mod:`scconvex.losses.sc`."""

    batchable = True

    def sample_value_grad(self, G, labels, tau):
        return _sc.sc_loss_gram_grad(G, labels, tau)

    def features_value(self, H, labels, tau):
        # In row blocks: the n x n Gram of a large sample-level point is never formed.
        return _sc.sc_loss(H, labels, tau, normalize=False)

    def constant(self, counts, tau: float) -> float:
        return float(sum(c * math.log(c - 1) for c in counts if c >= 2))

    def block_terms(self, B, sizes, counts, tau):
        return _sc.block_terms(B, sizes, counts, tau)

    def log_slope(self, r):
        return -np.logaddexp(0.0, -np.asarray(r, dtype=float))

    def cvxpy_block_objective(self, model, B):
        from ..solvers.cvxpy_backend import sc_block_objective

        return sc_block_objective(model, B)

    def cvxpy_sample_objective(self, model, G):
        from ..solvers.cvxpy_backend import sc_sample_objective

        return sc_sample_objective(model, G)

    def native_cost(self, model):
        from ..solvers.native import _LogExcessCost

        return _LogExcessCost(model.sizes, model.block_counts, model.spec.tau)


# ---------------------------------------------------------------------- negatives only
@dataclass(frozen=True)
class NegativesOnly(Loss):
    """Negatives-only ("decoupled") SC loss.

    ``L(G) = sum_i [ LSE_{a not in P(i), a != i}(G_ia / tau) - (1/tau) mean_{p in P(i)} G_ip ]``
    over anchors with at least one positive. Class level (collapsed):
    ``L = sum_{c: n_c >= 2} n_c log( sum_{c' != c} n_c' exp((M_cc' - 1)/tau) )``; its
    constant is ``sum_c n_c (log(n - n_c) - 2/tau)`` (every cosine at -1).
    """

    def sample_value_grad(self, G, labels, tau):
        G = _sc._as_finite(G, "G", 2)
        if G.shape[0] != G.shape[1]:
            raise InvalidInputError(f"G must be square, got shape {G.shape}")
        labels = _sc._as_labels(labels, G.shape[0])
        tau = check_tau(tau)
        same = labels[:, None] == labels[None, :]
        pos = same.copy()
        np.fill_diagonal(pos, False)
        npos = pos.sum(axis=1)
        active = npos > 0
        if np.any(same.all(axis=1)):
            raise InvalidInputError("negatives-only loss needs a negative for every anchor "
                                    "(at least two classes)")
        logits = np.where(same, -np.inf, G / tau)
        lse = logsumexp(logits, axis=1)
        pos_mean = np.where(pos, G, 0.0).sum(axis=1) / np.maximum(npos, 1) / tau
        value = float(np.sum((lse - pos_mean)[active]))
        A = np.exp(logits - lse[:, None]) - pos / np.maximum(npos, 1)[:, None]
        A[~active] = 0.0
        A /= tau
        return value, 0.5 * (A + A.T)

    def attains_constant(self, G, labels) -> bool:
        # Each anchor's excess is log mean_a exp((G_ia + 1) / tau) + mean_p (1 - G_ip) / tau,
        # two non-negative terms: zero exactly when its negatives are at -1 and its
        # positives at 1.
        labels = np.asarray(labels)
        same = labels[:, None] == labels[None, :]
        active = same.sum(axis=1) >= 2
        G = np.asarray(G)[active]
        same = same[active]
        return bool(np.all(np.where(same, G, -G) == 1.0))

    def constant(self, counts, tau: float) -> float:
        counts = np.asarray(counts, dtype=float)
        n = float(np.sum(counts))
        act = counts >= 2
        return float(np.sum(counts[act] * (np.log(n - counts[act]) - 2.0 / tau)))

    def block_terms(self, B, sizes, counts, tau):
        B = np.asarray(B, dtype=float)
        sizes = np.asarray(sizes)
        counts = np.asarray(counts)
        w = block_weights(sizes, counts)
        mass = (sizes * counts).astype(float)
        neg = float(np.sum(mass)) - counts
        active = counts >= 2
        with np.errstate(divide="ignore"):
            logw = np.log(w)
        x = (B + 1.0) / tau
        z = logw - np.log(neg)[:, None] + x
        z[~active] = -np.inf
        r = np.full(len(sizes), -np.inf)
        r[active] = logsumexp(z[active], axis=1)
        # Near the constant (every negative cosine near -1) the log-sum-exp is a difference
        # of nearly equal numbers; log1p of a weighted mean of expm1 is accurate there and
        # exactly 0 where the cosines are exactly -1, so the constant is seen as attained.
        xw = np.where(w > 0, x, 0.0)
        near = active & (np.max(xw, axis=1) <= 1.0)
        if np.any(near):
            r[near] = np.log1p(np.sum(w[near] * np.expm1(xw[near]), axis=1) / neg[near])
        prob = np.zeros_like(z)
        prob[active] = np.exp(z[active] - r[active, None])
        sig = active.astype(float)
        # r >= 0 in exact arithmetic on feasible points (B >= -1); rounding may dip below.
        ra = np.maximum(r[active], 0.0)
        excess = float(np.sum(mass[active] * ra))
        with np.errstate(divide="ignore"):
            log_excess = float(logsumexp(np.log(mass[active]) + np.log(ra)))
        const = float(np.sum(mass[active] * (np.log(neg[active]) - 2.0 / tau)))
        return BlockTerms(const + excess, excess, log_excess, r, sig, prob, w)

    def log_slope(self, r):
        return np.zeros_like(np.asarray(r, dtype=float))

    def gap_scale(self, value, excess):
        # The loss has no natural zero (it crosses 0 as tau varies); its excess over the
        # constant is the geometry-dependent part, so the larger of the two is the scale.
        return max(abs(value), excess)

    def cvxpy_block_objective(self, model, B):
        import cvxpy as cp

        g = model.dim
        m = model.sizes
        s = model.block_counts
        tau = model.spec.tau
        w = block_weights(m, s)
        neg = float(np.sum(m * s)) - s
        # Every off-diagonal entry of B is a term (w_pq = m_q s_q > 0); the diagonal entry is
        # a term only for blocks of two or more classes (the cosine between two of them).
        # Scaled by tau / n: the slopes are then of order one (Clarabel stops early on the
        # 1 / n scaling alone; measured at counts 20,20,2,2, tau 0.1).
        weight = (m * s).astype(float) * model.scale * tau
        out = 0
        for p in np.flatnonzero(s >= 2):
            cols = [q for q in range(g) if w[p, q] > 0]
            entries = cp.hstack([B[p, q] for q in cols])
            logw = np.log(w[p, cols] / neg[p])
            out = out + weight[p] * cp.log_sum_exp((entries - 1.0) / tau + logw)
        return out

    def cvxpy_sample_objective(self, model, G):
        import cvxpy as cp

        spec = model.spec
        tau = spec.tau
        n = spec.n
        ends = np.cumsum(spec.counts)
        starts = ends - np.asarray(spec.counts)
        out = 0
        for a, b, c in zip(starts, ends, spec.counts, strict=True):
            if c < 2:
                continue
            a, b = int(a), int(b)
            rows = G[a:b, :]
            parts = [rows[:, lo:hi] for lo, hi in ((0, a), (b, n)) if hi > lo]
            negs = parts[0] if len(parts) == 1 else cp.hstack(parts)
            lse = cp.log_sum_exp((negs - 1.0) / tau, axis=1)
            block = G[a:b, a:b]
            # Mean over positives: (sum of the block - trace) / (c - 1), trace = c.
            pos = (cp.sum(block) - c) / (c - 1)
            out = out + cp.sum(lse) - (pos - c) / tau
        return model.scale * tau * out


# ---------------------------------------------------------------------- native cost
class BlockLogExcessCost:
    """``F(Q) = log(excess loss)`` of a block Gram ``Q`` for any :class:`Loss`.

    Same interface as the native backend's SC cost: ``cost(Q) -> (F, C)`` with ``C`` the
    symmetric gradient ``dF/dQ`` (Frobenius pairing), plus ``g``, ``tau``, ``sphere`` and
    ``cosines``. With ``B`` the cosines of ``Q`` (:func:`scconvex.problem.model.from_block_gram`),
    ``dF/dB_pq = m_p s_p phi'(r_p) prob_pq / (tau E)``, formed in log space.
    """

    def __init__(self, model, loss: Loss) -> None:
        sizes = np.asarray(model.sizes, dtype=float)
        self.loss = loss
        self.int_sizes = np.asarray(model.sizes)
        self.counts = np.asarray(model.block_counts)
        self.g = sizes.size
        self.tau = model.spec.tau
        self.sphere = sizes == 1
        self.class_level = bool(np.all(self.sphere))
        self.invroot = 1.0 / np.sqrt(np.outer(sizes, sizes))
        self.free = np.flatnonzero(~self.sphere)
        self.free_den = sizes[self.free] - 1.0
        self.logmass = np.log(sizes * self.counts)

    def cosines(self, Q: np.ndarray) -> np.ndarray:
        """``B`` from ``Q`` (:func:`scconvex.problem.model.from_block_gram`)."""
        return from_block_gram(Q, self.int_sizes)

    def __call__(self, Q: np.ndarray) -> tuple[float, np.ndarray]:
        B = self.cosines(Q)
        t = self.loss.block_terms(B, self.int_sizes, self.counts, self.tau)
        F = t.log_excess
        if F == -math.inf:
            # The loss equals its constant here: a minimum, where log(excess) has no slope.
            return F, np.zeros((self.g, self.g))
        act = self.counts >= 2
        coef = np.zeros(self.g)
        coef[act] = np.exp(self.logmass[act] + self.loss.log_slope(t.rowlse[act]) - F)
        D = coef[:, None] * t.prob / self.tau
        invroot = None if self.class_level else self.invroot
        return F, q_gradient(D, invroot, self.free, self.free_den)


# ---------------------------------------------------------------------- registry
LOSSES: dict[str, Loss] = {
    "sc": SupCon("sc", "L_out supervised contrastive loss (positives in the denominator)"),
    "negatives-only": NegativesOnly("negatives-only",
                                    "denominator over negatives only (decoupled form)"),
}
"""Loss objects by name (the values of ``ProblemSpec.loss``)."""


def loss_of(spec) -> Loss:
    """The loss object of a spec: its named loss, summed over batches if it has any."""
    base = get_loss(spec.loss)
    if getattr(spec, "batches", None) is None:
        return base
    from ..problem.batches import batched_loss

    return batched_loss(base, spec.batches, spec.labels)


def get_loss(name: str) -> Loss:
    """The loss object registered as ``name``."""
    return lookup(LOSSES, name, "loss")

