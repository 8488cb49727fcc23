"""cvxpy models of the relaxation, solved with Clarabel or SCS.

The objective is the loss divided by ``n`` (MATH.md section 6: conic solvers stop at
absolute tolerances), written relative to ``sum_c n_c log(n_c - 1)`` so that the solver
sees the part of the loss that depends on the geometry.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..loss import block_weights
from ..model import Model
from . import Backend, RawResult, register

# cvxpy's status strings mapped onto the package's raw vocabulary; others become "error".
_STATUS = {
    "optimal": "optimal",
    "optimal_inaccurate": "inaccurate",
}

# Clarabel reaches its tight tolerance cheaply, and a tight interior-point answer is what
# makes the (first-order) certificate small; SCS is first-order and slow to get there.
_DEFAULTS = {
    "clarabel": {"tol": 1e-12, "max_iter": 500, "time_limit": None, "verbose": False},
    "scs": {"tol": 1e-9, "max_iter": 100_000, "time_limit": None, "verbose": False},
}


def sc_block_objective(model: Model, B):
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


def _block_problem(model: Model):
    import cvxpy as cp

    g = model.dim
    m = model.sizes
    B = cp.Variable((g, g), symmetric=True)
    objective = cp.Minimize(model.loss.cvxpy_block_objective(model, B))
    single = m == 1
    root = np.sqrt(m.astype(float))
    R = np.outer(root, root)
    np.fill_diagonal(R, 0.0)
    Q = cp.Variable((g, g), PSD=True)
    constraints = [Q == cp.multiply(B, R) + cp.diag(1.0 + cp.multiply(m - 1.0, cp.diag(B)))]
    if np.any(single):
        constraints.append(cp.diag(B)[np.flatnonzero(single)] == 1.0)
    if np.any(~single):
        constraints.append(cp.diag(B)[np.flatnonzero(~single)] <= 1.0)
    constraints += model.relaxation.cvxpy_constraints(model, B)
    return cp.Problem(objective, constraints), B


def sc_sample_objective(model: Model, G):
    """``L / n`` of the SC loss (up to a constant) in the sample Gram ``G``."""
    spec = model.spec
    return model.scale * sc_gram_objective(G, spec.labels, spec.tau)


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


def _sample_problem(model: Model):
    import cvxpy as cp

    n = model.spec.n
    G = cp.Variable((n, n), PSD=True)
    objective = cp.Minimize(model.loss.cvxpy_sample_objective(model, G))
    constraints = [cp.diag(G) == 1.0] + model.relaxation.cvxpy_constraints(model, G)
    return cp.Problem(objective, constraints), G


def _settings(name: str, options: dict) -> dict:
    tol = float(options["tol"])
    if name == "clarabel":
        out = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol,
               "max_iter": int(options["max_iter"])}
        if options["time_limit"] is not None:
            out["time_limit"] = float(options["time_limit"])
    else:
        out = {"eps_abs": tol, "eps_rel": tol, "max_iters": int(options["max_iter"])}
        if options["time_limit"] is not None:
            out["time_limit_secs"] = float(options["time_limit"])
    return out


def _run(name: str):
    def run(model: Model, options: dict) -> RawResult:
        raw = run_once(model, options)
        # Clarabel sometimes cannot reach a very tight tolerance and then returns an early
        # iterate as "inaccurate"; a looser target often converges to a better point.
        tol = float(options["tol"])
        while name == "clarabel" and raw.status == "inaccurate" and tol < 1e-9:
            tol *= 100.0
            retry = run_once(model, {**options, "tol": tol})
            if retry.X is None:
                break
            raw = RawResult(retry.status, retry.X, retry.message + f" (retried at tol {tol:g})",
                            raw.iterations + retry.iterations, retry.info)
        return raw

    def run_once(model: Model, options: dict) -> RawResult:
        import cvxpy as cp

        build = _sample_problem if model.level == "sample" else _block_problem
        problem, var = build(model)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # cvxpy warns about inaccurate solutions; the status below says it instead.
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=name.upper(), verbose=bool(options["verbose"]),
                              **_settings(name, options))
        except cp.error.SolverError as exc:
            return RawResult("error", None, f"{name} failed: {exc}")
        seconds = time.perf_counter() - t0
        status = _STATUS.get(problem.status)
        limit = options["time_limit"]
        if status is None:
            status = "error"
            if problem.status == "user_limit":
                status = ("time_limit" if limit is not None and seconds >= 0.95 * limit
                          else "iteration_limit")
        iters = getattr(problem.solver_stats, "num_iters", None) or 0
        X = None if var.value is None else np.array(var.value, dtype=float)
        return RawResult(status, X, f"cvxpy status {problem.status!r}", int(iters),
                         {"solve_seconds": seconds})

    return run


for _name in ("clarabel", "scs"):
    register(Backend(_name, ("group", "class", "sample"), _DEFAULTS[_name], ("cvxpy", _name),
                     _run(_name), relaxations=("elliptope", "dnn")))
