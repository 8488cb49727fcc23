"""High-precision reference for the STEP-imbalanced problem (mpmath, independent code).

STEP (MATH.md section 4): ``m1`` classes of ``s1`` samples and ``m2`` classes of ``s2``
samples. By symmetry the optimum has three cosines: ``a1`` between two classes of the first
kind, ``a2`` between two of the second, ``b`` between the kinds, subject to ``a_p <= 1``
and the 2 x 2 matrix ``Q = [[1 + (m1-1) a1, sqrt(m1 m2) b], [sqrt(m1 m2) b, 1 + (m2-1) a2]]``
being PSD.

The loss increases with ``b``, so at the optimum ``b`` is as small as ``Q`` allows and the
PSD constraint is active: with ``x = sqrt(Q11)``, ``y = sqrt(Q22)``,

    a1 = (x^2 - 1) / (m1 - 1),   a2 = (y^2 - 1) / (m2 - 1),   b = -x y / sqrt(m1 m2).

The reduced problem in ``(x, y)`` is solved by Newton's method in mpmath. A stationary point
with ``x, y > 0`` is a KKT point of the convex problem (the multiplier of the PSD
constraint, ``dE/dQ12 / (2 x y)``, is positive because the loss increases with ``b``), hence
its global minimum; :func:`step_reference` checks these conditions before returning.

Nothing here imports scconvex: the reference must not share code with what it checks.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
from scipy.optimize import minimize


def _terms(x, y, m1, s1, m2, s2, tau, lib):
    """Excess loss ``L - sum n_c log(n_c - 1)`` in the reduced variables."""
    a1 = (x * x - 1) / (m1 - 1) if m1 > 1 else None
    a2 = (y * y - 1) / (m2 - 1) if m2 > 1 else None
    b = -x * y / lib.sqrt(m1 * m2)
    eb = lib.exp((b - 1) / tau)
    total = 0
    if s1 > 1:
        t = m2 * s2 * eb + ((m1 - 1) * s1 * lib.exp((a1 - 1) / tau) if m1 > 1 else 0)
        total += m1 * s1 * lib.log1p(t / (s1 - 1))
    if s2 > 1:
        t = m1 * s1 * eb + ((m2 - 1) * s2 * lib.exp((a2 - 1) / tau) if m2 > 1 else 0)
        total += m2 * s2 * lib.log1p(t / (s2 - 1))
    return total


class _Float:
    sqrt = staticmethod(np.sqrt)
    exp = staticmethod(np.exp)
    log1p = staticmethod(np.log1p)


def _float_start(m1, s1, m2, s2, tau):
    """A float64 starting point: minimise the log of the excess on a box."""
    free = [m1 > 1, m2 > 1]

    def unpack(z):
        it = iter(z)
        x = next(it) if free[0] else 1.0
        y = next(it) if free[1] else 1.0
        return x, y

    def fun(z):
        x, y = unpack(z)
        return float(np.log(_terms(x, y, m1, s1, m2, s2, tau, _Float)))

    bounds = [(1e-6, math.sqrt(m1))] * free[0] + [(1e-6, math.sqrt(m2))] * free[1]
    if not bounds:
        return 1.0, 1.0
    # A grid first: x = y = 0 is a stationary saddle that a local method can fall into.
    axes = [np.linspace(lo, hi, 41)[1:-1] for lo, hi in bounds]
    grid = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
    z0 = min(grid, key=fun)
    res = minimize(fun, z0, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": 0, "gtol": 1e-13, "maxiter": 5000})
    return unpack(res.x if res.fun <= fun(z0) else z0)


def step_reference(m1: int, s1: int, m2: int, s2: int, tau: float, *,
                   dps: int = 40) -> dict:
    """Optimal STEP geometry to ``dps`` digits.

    Parameters
    ----------
    m1, s1 : int
        Number of classes of the first kind and their sample count.
    m2, s2 : int
        The same for the second kind (``s1 != s2``).
    tau : float
        Temperature.
    dps : int
        mpmath working precision in decimal digits (30 or more).

    Returns
    -------
    dict
        ``a1``, ``a2``, ``b`` (mpmath numbers; ``a_p`` is None for a kind with one class),
        ``loss`` and ``excess`` (mpmath numbers), and ``x``, ``y``.

    Raises
    ------
    RuntimeError
        If Newton's method fails or the KKT conditions do not hold.
    """
    with mp.workdps(dps):
        tau_m = mp.mpf(tau)
        x0, y0 = _float_start(m1, s1, m2, s2, tau)
        free = [m1 > 1, m2 > 1]

        def E(*z):
            it = iter(z)
            x = next(it) if free[0] else mp.mpf(1)
            y = next(it) if free[1] else mp.mpf(1)
            return _terms(x, y, m1, s1, m2, s2, tau_m, mp)

        n_free = sum(free)
        z0 = [mp.mpf(v) for v, f in zip((x0, y0), free, strict=True) if f]
        if n_free:
            # The excess is tiny at small tau: Newton on the gradient of its logarithm.
            def grad(*z):
                return [mp.diff(lambda t, i=i: mp.log(E(*(z[:i] + (t,) + z[i + 1:]))), z[i])
                        for i in range(n_free)]

            tol = mp.mpf(10) ** (-dps + 8)
            if n_free > 1:
                z = list(mp.findroot(grad, z0, tol=tol, maxsteps=200))
            else:
                z = [mp.findroot(lambda t: grad(t)[0], z0[0], tol=tol, maxsteps=200)]
            g = grad(*z)
            scale = 1 / tau_m
            if max(abs(v) for v in g) > mp.mpf(10) ** (-dps // 2) * scale:
                raise RuntimeError("Newton's method did not converge")
            H = mp.matrix(n_free, n_free)
            for i in range(n_free):
                for j in range(n_free):
                    H[i, j] = mp.diff(lambda *t: mp.log(E(*t)), z,
                                      tuple(int(i == q) + int(j == q) for q in range(n_free)))
            if min(mp.eigsy(H)[0]) <= 0:
                raise RuntimeError("the stationary point is not a minimum")
        else:
            z = []
        it = iter(z)
        x = next(it) if free[0] else mp.mpf(1)
        y = next(it) if free[1] else mp.mpf(1)
        if not (1e-6 < x <= mp.sqrt(m1) and 1e-6 < y <= mp.sqrt(m2)):
            raise RuntimeError("the optimum lies on the boundary; not handled")
        a1 = (x * x - 1) / (m1 - 1) if m1 > 1 else None
        a2 = (y * y - 1) / (m2 - 1) if m2 > 1 else None
        b = -x * y / mp.sqrt(m1 * m2)
        excess = _terms(x, y, m1, s1, m2, s2, tau_m, mp)
        const = m1 * s1 * mp.log(s1 - 1) if s1 > 1 else 0
        const += m2 * s2 * mp.log(s2 - 1) if s2 > 1 else 0
        return {"a1": a1, "a2": a2, "b": b, "x": x, "y": y, "excess": excess,
                "loss": const + excess}


def step_cosines(m1: int, s1: int, m2: int, s2: int, tau: float, *, dps: int = 40):
    """``(a1, a2, b)`` as floats (``nan`` for a kind with a single class)."""
    ref = step_reference(m1, s1, m2, s2, tau, dps=dps)
    return tuple(float(ref[key]) if ref[key] is not None else math.nan
                 for key in ("a1", "a2", "b"))


# ---------------------------------------------------------------------- general class level
def _mp_gradient(M, counts, tau, negatives_only=False):
    """Row partials ``dE/dM_cj`` (row ``c`` only) of the class-level excess, in mpmath;
    works for real and complex entries (complex-step derivatives)."""
    k = len(counts)
    n = sum(counts)
    G = [[mp.mpf(0)] * k for _ in range(k)]
    for c in range(k):
        if counts[c] < 2:
            continue
        shift = -1 if negatives_only else 1
        terms = [counts[j] * mp.exp((M[c][j] - shift) / tau) if j != c else 0
                 for j in range(k)]
        base = 0 if negatives_only else counts[c] - 1
        den = base + mp.fsum(terms)
        for j in range(k):
            if j != c:
                G[c][j] = counts[c] * terms[j] / (tau * den)
    del n
    return G


def _kkt_residual(U, counts, tau, negatives_only=False):
    """``S U`` (``S = C - Diag(nu)``, ``nu_i = (C M)_ii``) and ``|u_i|^2 - 1``, flattened."""
    k = len(U)
    r = len(U[0])
    M = [[mp.fsum(U[i][a] * U[j][a] for a in range(r)) for j in range(k)] for i in range(k)]
    G = _mp_gradient(M, counts, tau, negatives_only)
    C = [[(G[i][j] + G[j][i]) / 2 for j in range(k)] for i in range(k)]
    out = []
    for i in range(k):
        CU = [mp.fsum(C[i][j] * U[j][a] for j in range(k)) for a in range(r)]
        nu = mp.fsum(CU[a] * U[i][a] for a in range(r))
        out += [CU[a] - nu * U[i][a] for a in range(r)]
    out += [mp.fsum(U[i][a] ** 2 for a in range(r)) - 1 for i in range(k)]
    return out


def class_reference(counts, tau: float, start, *, rank: int | None = None, dps: int = 50,
                    negatives_only: bool = False, max_steps: int = 30):
    """Optimal class Gram of a small problem to about ``dps - 15`` digits (mpmath).

    Gauss-Newton on the KKT equations ``S U = 0``, ``|u_i| = 1`` of a rank-``r`` factor
    ``M = U U^T``, started from a float64 class Gram ``start`` (any solver's answer: it
    only seeds the iteration and fixes the rank). The result is then checked: ``S`` must
    be PSD, which makes ``M`` a KKT point of the convex problem, hence its minimum.

    Returns
    -------
    M : ndarray of mpmath numbers, shape (k, k)
    min_eig : mpmath number
        Smallest eigenvalue of ``S`` at ``M`` (>= -10**(-dps/2) relative).

    Raises
    ------
    RuntimeError
        When the iteration does not converge or ``S`` is not PSD.
    """
    k = len(counts)
    start = np.asarray(start, dtype=float)
    lam, V = np.linalg.eigh(0.5 * (start + start.T))
    if rank is None:
        rank = int(np.sum(lam > 1e-9 * lam[-1]))
    U0 = V[:, -rank:] * np.sqrt(np.maximum(lam[-rank:], 0.0))
    U0 /= np.linalg.norm(U0, axis=1, keepdims=True)
    with mp.workdps(dps):
        tau_m = mp.mpf(tau)
        U = [[mp.mpf(float(x)) for x in row] for row in U0]
        nvar = k * rank
        h = mp.mpf(10) ** (-dps)
        tol = mp.mpf(10) ** (-dps + 15)
        for _ in range(max_steps):
            F = _kkt_residual(U, counts, tau_m, negatives_only)
            scale = max(abs(x) for x in _kkt_residual(U, counts, tau_m, negatives_only)[:1]
                        + [mp.mpf(1)])
            if max(abs(x) for x in F) <= tol * scale:
                break
            J = mp.matrix(len(F), nvar)
            for v in range(nvar):
                i, a = divmod(v, rank)
                Uc = [[mp.mpc(x) for x in row] for row in U]
                Uc[i][a] += mp.mpc(0, h)
                Fc = _kkt_residual(Uc, counts, tau_m, negatives_only)
                for e, val in enumerate(Fc):
                    J[e, v] = mp.im(val) / h
            step = mp.lu_solve(J.T * J + mp.eye(nvar) * mp.mpf(10) ** (-2 * dps // 3),
                               J.T * mp.matrix(F))
            for v in range(nvar):
                i, a = divmod(v, rank)
                U[i][a] -= step[v]
        else:
            raise RuntimeError("Gauss-Newton did not converge")
        M = [[mp.fsum(U[i][a] * U[j][a] for a in range(rank)) for j in range(k)]
             for i in range(k)]
        G = _mp_gradient(M, counts, tau_m, negatives_only)
        S = mp.matrix(k, k)
        for i in range(k):
            for j in range(k):
                S[i, j] = (G[i][j] + G[j][i]) / 2 if i != j else 0
        for i in range(k):
            S[i, i] = -mp.fsum(S[i, j] * M[i][j] for j in range(k))
        eig = mp.eigsy(S, eigvals_only=True)
        low = min(eig)
        top = max(abs(x) for x in eig)
        if low < -mp.mpf(10) ** (-dps // 2) * top:
            raise RuntimeError(f"not a minimum: S has eigenvalue {low}")
        return np.array(M, dtype=object), low
