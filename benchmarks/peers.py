"""The non-convex solver against pymanopt on the same product of spheres, cost and gradient.

pymanopt (Boumal et al.) is the reference implementation of Riemannian optimisation in
Python. Both solvers get the class-level excess loss of
:func:`scconvex.features.nonconvex.class_cost`
and its Euclidean gradient; pymanopt's trust regions get the Hessian as a finite difference
of that gradient (its numpy backend has no automatic differentiation), and its conjugate
gradient needs only the gradient. Points are ``(k, d)`` with unit rows here and ``(d, k)``
with unit columns (``Oblique(d, k)``) in pymanopt. Every solver starts from the same random
point and stops on the same gradient test as :func:`scconvex.minimize_spheres`.
"""

from __future__ import annotations

import time

import numpy as np


def run_peers(spec, d: int, seed: int, time_limit: float = 120.0) -> list[dict]:
    """Run scconvex and pymanopt from one start; return one row per solver."""
    import pymanopt
    from pymanopt.manifolds import Oblique
    from pymanopt.optimizers import ConjugateGradient, TrustRegions

    from scconvex.features.nonconvex import DEFAULT_TOL, class_cost, minimize_spheres
    from scconvex.solvers.manifold import Spheres
    from scconvex.threads import blas_threads

    cost = class_cost(spec, d)
    x0 = Spheres(spec.k, d).random_point(np.random.default_rng(seed))
    rows = []
    t0 = time.perf_counter()
    ours = minimize_spheres(spec, d, restarts=1, x0=x0)
    rows.append({"solver": "scconvex L-BFGS", "seconds": time.perf_counter() - t0,
                 "excess": ours.excess, "grad_norm": ours.grad_norms[0],
                 "iterations": ours.iterations[0], "converged": ours.converged[0]})
    man = Oblique(d, spec.k)
    last: dict = {}
    nfev = [0]

    def evaluate(P):
        key = P.tobytes()
        if last.get("key") != key:
            nfev[0] += 1
            last.update(key=key, value=cost.fun(np.ascontiguousarray(P.T)))
        return last["value"]

    @pymanopt.function.numpy(man)
    def f(P):
        return evaluate(P)[0]

    @pymanopt.function.numpy(man)
    def egrad(P):
        return evaluate(P)[1].T

    @pymanopt.function.numpy(man)
    def ehess(P, V):
        h = 1e-7 / max(float(np.linalg.norm(V)), 1e-300)
        g1 = cost.fun(np.ascontiguousarray((P + h * V).T))[1].T
        return (g1 - evaluate(P)[1].T) / h

    problem = pymanopt.Problem(man, f, euclidean_gradient=egrad, euclidean_hessian=ehess)
    # The same relative gradient test as minimize_spheres, at the cost of the optimum.
    gtol = DEFAULT_TOL / spec.tau * ours.excess
    for name, opt in (("pymanopt trust regions", TrustRegions(
                          verbosity=0, max_time=time_limit, min_gradient_norm=gtol,
                          max_iterations=5000)),
                      ("pymanopt conjugate gradient", ConjugateGradient(
                          verbosity=0, max_time=time_limit, min_gradient_norm=gtol,
                          max_iterations=20000))):
        nfev[0] = 0
        t0 = time.perf_counter()
        # The same single BLAS thread as minimize_spheres uses by default.
        with blas_threads(1):
            res = opt.run(problem, initial_point=x0.T.copy())
        rows.append({"solver": name, "seconds": time.perf_counter() - t0,
                     "excess": float(res.cost), "grad_norm": float(res.gradient_norm),
                     "iterations": int(res.iterations),
                     "converged": float(res.gradient_norm) <= gtol,
                     "note": str(res.stopping_criterion)[:60]})
    return rows
