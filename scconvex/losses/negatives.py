"""The negatives-only ("decoupled") SC loss: the denominator over negatives only.

``L(G) = sum_i [ LSE_{a not in P(i), a != i}(G_ia / tau) - (1/tau) mean_{p in P(i)} G_ip ]``
over anchors with at least one positive (MATH.md section 8, ``docs/variants.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..checks import check_tau
from ..errors import InvalidInputError
from .base import BlockTerms, CurvatureRows, Loss, as_finite, as_labels, block_weights


@dataclass(frozen=True)
class NegativesOnly(Loss):
    """Negatives-only ("decoupled") SC loss.

    ``L(G) = sum_i [ LSE_{a not in P(i), a != i}(G_ia / tau) - (1/tau) mean_{p in P(i)} G_ip ]``
    over anchors with at least one positive. Class level (collapsed):
    ``L = sum_{c: n_c >= 2} n_c log( sum_{c' != c} n_c' exp((M_cc' - 1)/tau) )``; its
    constant is ``sum_c n_c (log(n - n_c) - 2/tau)`` (every cosine at -1).
    """

    def sample_value_grad(self, G, labels, tau):
        G = as_finite(G, "G", 2)
        if G.shape[0] != G.shape[1]:
            raise InvalidInputError(f"G must be square, got shape {G.shape}")
        labels = as_labels(labels, G.shape[0])
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

    def curvature_rows(self, sizes, counts, tau):
        # log sum_q w e^{(B + 1)/tau} - log(n - s_p): no constant in the logarithm.
        counts = np.asarray(counts, dtype=float)
        n = float(np.sum(np.asarray(sizes, dtype=float) * counts))
        return CurvatureRows(np.log(np.maximum(n - counts, 1.0)), -1.0, False)

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
