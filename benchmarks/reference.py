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
