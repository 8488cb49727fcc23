"""An independent class-level optimum: the log-det barrier path in mpmath.

Written for the review of the cosine bars (issue 17) without the project's solvers or its
reference code (``benchmarks/reference.py`` solves the KKT equations; this follows the
central path instead). It minimises the excess loss of MATH.md section 4, divided by its
value at a scale point, over the elliptope: for each ``mu`` Newton's method with
backtracking on ``F(M) - mu log det M`` in the ``k (k - 1) / 2`` cosines, then ``mu`` is
divided by 10. A central point is optimal to within ``k mu`` of the scaled loss, and
consecutive points show how far the path still moves (``change``). Precision: ``dps``
digits, ``mu`` down to ``10^(-dps/3)`` (the Newton systems lose about ``2 log10(1/mu)``
digits near a singular optimum).
"""

from __future__ import annotations

import mpmath as mp


def _rows(M, counts, tau, loss):
    """(anchor class, other classes, log-terms) of every anchor row; the SC row is
    ``log1p(sum e^z)``, the negatives-only row ``log(sum e^z)``."""
    k = len(counts)
    n = sum(counts)
    for c in range(k):
        if counts[c] < 2:
            continue
        js = [j for j in range(k) if j != c]
        if loss == "sc":
            z = [mp.log(mp.mpf(counts[j]) / (counts[c] - 1)) + (M[c, j] - 1) / tau
                 for j in js]
        else:
            z = [mp.log(mp.mpf(counts[j]) / (n - counts[c])) + (M[c, j] + 1) / tau
                 for j in js]
        yield c, js, z


def excess(M, counts, tau, loss="sc"):
    total = mp.mpf(0)
    for c, _, z in _rows(M, counts, tau, loss):
        s = mp.fsum(mp.exp(v) for v in z)
        total += counts[c] * (mp.log1p(s) if loss == "sc" else mp.log(s))
    return total


def _grad_hess(M, counts, tau, loss, pairs, index):
    g = [mp.mpf(0)] * len(pairs)
    H = mp.zeros(len(pairs), len(pairs))
    for c, js, z in _rows(M, counts, tau, loss):
        e = [mp.exp(v) for v in z]
        den = (1 + mp.fsum(e)) if loss == "sc" else mp.fsum(e)
        pi = [v / den for v in e]
        idx = [index[min(c, j), max(c, j)] for j in js]
        kap = mp.mpf(counts[c]) / tau
        for a, pa in zip(idx, pi, strict=True):
            g[a] += kap * pa
            H[a, a] += kap / tau * pa
            for b, pb in zip(idx, pi, strict=True):
                H[a, b] -= kap / tau * pa * pb
    return g, H


def optimum(counts, tau, *, loss="sc", start=None, scale_at=None, dps=60, mu0="1e-3"):
    """The class-level optimum (mpmath matrix) and the largest change of an entry over the
    last tenfold decrease of ``mu``.

    ``start`` (a positive definite class Gram, e.g. a shrunken answer) only saves Newton
    steps; the central path does not depend on it. ``scale_at`` fixes the loss scale
    (default: ``start``).
    """
    with mp.workdps(dps):
        tau = mp.mpf(tau)
        k = len(counts)
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        index = {p: a for a, p in enumerate(pairs)}
        M = mp.eye(k) if start is None else mp.matrix(start)
        E0 = excess(M if scale_at is None else mp.matrix(scale_at), counts, tau, loss)
        E0 = E0 if E0 > 0 else mp.mpf(1)
        mu_end = mp.mpf(10) ** (-(dps // 3))

        def phi(X, mu):
            try:
                chol = mp.cholesky(X)
            except (ValueError, ZeroDivisionError):
                return None
            return (excess(X, counts, tau, loss) / E0
                    - 2 * mu * mp.fsum(mp.log(chol[i, i]) for i in range(k)))

        mu = mp.mpf(mu0)
        previous = None
        while True:
            last = mu <= mu_end
            for _ in range(200):
                g, H = _grad_hess(M, counts, tau, loss, pairs, index)
                W = mp.inverse(M)
                grad = mp.matrix([v / E0 - 2 * mu * W[i, j]
                                  for v, (i, j) in zip(g, pairs, strict=True)])
                for a, (i, j) in enumerate(pairs):
                    for b, (p, q) in enumerate(pairs):
                        H[a, b] = H[a, b] / E0 + 2 * mu * (W[i, p] * W[j, q]
                                                           + W[i, q] * W[j, p])
                try:
                    step = mp.lu_solve(H, -grad)
                except ZeroDivisionError:  # singular to working precision: stop here
                    last = True
                    break
                dec = -mp.fsum(grad[a] * step[a] for a in range(len(pairs)))
                if dec < mu * (mp.mpf(10) ** (-(dps // 3)) if last else mp.mpf("1e-2")):
                    break
                t, f0, trial = mp.mpf(1), phi(M, mu), None
                while t > mp.mpf(10) ** -30:
                    X = M.copy()
                    for a, (i, j) in enumerate(pairs):
                        X[i, j] += t * step[a]
                        X[j, i] = X[i, j]
                    f = phi(X, mu)
                    if f is not None and f <= f0 - t * dec / 4:
                        trial = X
                        break
                    t /= 2
                if trial is None:
                    break
                M = trial
            if last:
                break
            previous = M.copy()
            mu = max(mu / 10, mu_end)
        change = (max(abs(M[i, j] - previous[i, j]) for i in range(k) for j in range(k))
                  if previous is not None else mp.inf)
        return M, float(change)
