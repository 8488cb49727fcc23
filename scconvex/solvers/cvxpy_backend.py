"""cvxpy models of the relaxation, solved with Clarabel or SCS.

Class and group level use one variable, the ``g x g`` block Gram ``Q`` of
:func:`scconvex.problem.model.block_gram` (``Q = M`` at class level): PSD, ``Q_pp = 1`` for a block
of one class and ``Q_pp <= m_p`` (``a_p <= 1``) otherwise. Every cosine is an affine
function of ``Q``, so the model has no auxiliary matrix and no coupling equalities (an
earlier model with a second matrix ``B`` tied to ``Q`` by ``g^2`` equalities stalled
Clarabel short of a certifiable point). Sample level uses the ``n x n`` Gram ``G``.

The objective is the loss divided by ``n`` (MATH.md section 6: conic solvers stop at
absolute tolerances), written relative to ``sum_c n_c log(n_c - 1)`` so that the solver
sees the part of the loss that depends on the geometry.

Interior-point accuracy on these exponential-cone programs depends on settings in ways that
vary between machines and problems (a tolerance that works on one instance stalls on
another). So the backend tries a short, fixed list of settings (:data:`ATTEMPTS`) and
keeps the answer with the best *certificate*, stopping as soon as one is certified far
inside the default tolerances, or at the time limit. Each answer is rounded and certified
once, by the pipeline's :class:`~scconvex.certificates.certify.Rounder` (its tolerances and
deadline); the pipeline reuses the rounding of the answer chosen. The chosen attempt is named in the
raw message.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..certificates.certify import Rounded, Rounder, badness
from ..losses.sc import block_terms, block_weights
from ..problem.model import Model, from_block_gram
from . import Backend, RawResult, register

# cvxpy's status strings mapped onto the package's raw vocabulary; others become "error".
_STATUS = {
    "optimal": "optimal",
    "optimal_inaccurate": "inaccurate",
}

_DEFAULTS = {
    "clarabel": {"tol": 1e-12, "max_iter": 500, "time_limit": None, "verbose": False},
    "scs": {"tol": 1e-9, "max_iter": 100_000, "time_limit": None, "verbose": False},
}

ATTEMPTS = {
    "clarabel": (
        {},
        {"static_regularization_constant": 1e-10},
        {"equilibrate_enable": False},
        {"tol_scale": 100.0},
        {"linearised": True},
    ),
    "scs": ({},),
}
"""Settings tried in turn, on top of ``tol`` (``tol_scale`` multiplies it). Clarabel's
defaults are static regularisation 1e-8 and equilibration on; with a tolerance of 1e-12
either can stall an exp-cone program a few digits short, and which one does differs
between instances, so all are tried before giving up. ``linearised`` solves the
log-linearised model of :func:`_block_problem` (class and group level only), which is
what resolves the geometry at small ``tau``."""

GOOD_ENOUGH = (1e-9, 1e-5)
"""Stop trying further settings once the certified gap is below these (relative to the
loss, relative to the excess loss) at the solved level and at sample level: 100 to 1000
times inside the default tolerances of :func:`scconvex.pipeline.solve`."""


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


def sc_block_linearised_objective(model: Model, B):
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


def block_cosines(model: Model, Q):
    """The cosines ``B`` as an affine cvxpy expression of the block Gram ``Q``.

    ``b_pq = Q_pq / sqrt(m_p m_q)``, ``a_p = (Q_pp - 1) / (m_p - 1)`` inside a block of
    several classes, and the constant 1 on the diagonal of a block of one class (the
    inverse of :func:`scconvex.problem.model.block_gram`).
    """
    import cvxpy as cp

    g = model.dim
    m = model.sizes
    root = np.sqrt(m.astype(float))
    coef = 1.0 / np.outer(root, root)
    shift = np.zeros((g, g))
    big = np.flatnonzero(m >= 2)
    one = np.flatnonzero(m == 1)
    coef[big, big] = 1.0 / (m[big] - 1.0)
    shift[big, big] = -1.0 / (m[big] - 1.0)
    coef[one, one] = 0.0
    shift[one, one] = 1.0
    return cp.multiply(coef, Q) + shift


def _block_problem(model: Model, linearised: bool = False):
    import cvxpy as cp

    m = model.sizes
    g = model.dim
    Q = cp.Variable((g, g), PSD=True)
    B = block_cosines(model, Q)
    if linearised:
        objective = cp.Minimize(sc_block_linearised_objective(model, B))
    else:
        objective = cp.Minimize(model.loss.cvxpy_block_objective(model, B))
    constraints = []
    one = np.flatnonzero(m == 1)
    big = np.flatnonzero(m >= 2)
    if one.size:
        constraints.append(cp.diag(Q)[one] == 1.0)
    if big.size:
        constraints.append(cp.diag(Q)[big] <= m[big].astype(float))
    constraints += model.relaxation.cvxpy_constraints(model, B)
    return cp.Problem(objective, constraints), Q


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


def _settings(name: str, options: dict, attempt: dict, time_limit: float | None) -> dict:
    tol = float(options["tol"]) * attempt.get("tol_scale", 1.0)
    if name == "clarabel":
        out = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol,
               "max_iter": int(options["max_iter"])}
        out.update({k: v for k, v in attempt.items() if k not in _MODEL_KEYS})
        if time_limit is not None:
            out["time_limit"] = float(time_limit)
    else:
        out = {"eps_abs": tol, "eps_rel": tol, "max_iters": int(options["max_iter"])}
        if time_limit is not None:
            out["time_limit_secs"] = float(time_limit)
    return out


_MODEL_KEYS = ("tol_scale", "linearised")
"""Attempt keys that change the model or the tolerance rather than a solver setting."""


def _describe(attempt: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in attempt.items()) or "default settings"


def _run(name: str):
    def run(model: Model, options: dict, rounder: Rounder | None = None) -> RawResult:
        t0 = time.perf_counter()
        limit = options["time_limit"]
        if rounder is None:
            # Called on its own: score by the stopping tolerances, and stop rounding
            # at the time limit as well.
            end = math.inf if limit is None else t0 + float(limit)
            rounder = Rounder(model, GOOD_ENOUGH, end)
        best = None
        iterations = 0
        tried = 0
        built: dict[bool, tuple] = {}  # cvxpy problems by "linearised", compiled once
        for attempt in _ordered(ATTEMPTS[name], model):
            left = None if limit is None else limit - (time.perf_counter() - t0)
            if tried and left is not None and left <= 0:
                break
            linear = bool(attempt.get("linearised"))
            if linear not in built:
                built[linear] = (_sample_problem(model) if model.level == "sample"
                                 else _block_problem(model, linearised=linear))
            raw = run_once(model, built[linear], options, attempt,
                           None if left is None else max(left, 1e-3))
            tried += 1
            iterations += raw.iterations
            rounded = rounder(raw.X) if _usable(raw.X) else None
            score = _score(rounded)
            if best is None or score < best[0]:
                best = (score, raw, attempt, rounded)
            if (rounded is not None and _good_enough(rounded)
                    or raw.status in ("time_limit", "error")):
                break
        _, raw, attempt, rounded = best
        note = f" with {_describe(attempt)} (best certificate of {tried} attempt(s))"
        info = {**raw.info, "solve_seconds": time.perf_counter() - t0, "attempts": tried}
        return RawResult(raw.status, raw.X, raw.message + note, iterations, info, rounded)

    def run_once(model: Model, built: tuple, options: dict, attempt: dict,
                 limit) -> RawResult:
        import cvxpy as cp

        problem, var = built
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # cvxpy warns about inaccurate solutions; the status below says it instead.
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=name.upper(), verbose=bool(options["verbose"]),
                              **_settings(name, options, attempt, limit))
        except cp.error.SolverError as exc:
            return RawResult("error", None, f"{name} failed: {exc}")
        seconds = time.perf_counter() - t0
        status = _STATUS.get(problem.status)
        if status is None:
            status = "error"
            if problem.status == "user_limit":
                status = ("time_limit" if limit is not None and seconds >= 0.95 * limit
                          else "iteration_limit")
        iters = getattr(problem.solver_stats, "num_iters", None) or 0
        X = None
        if var.value is not None:
            X = np.array(var.value, dtype=float)
            if model.level != "sample":
                X = from_block_gram(X, model.sizes)
        return RawResult(status, X, f"cvxpy status {problem.status!r}", int(iters),
                         {"solve_seconds": seconds})

    return run


def _ordered(attempts, model: Model) -> list[dict]:
    """The attempts for ``model``: the linearised model first where it is the right one.

    At the simplex ETF (the balanced optimum, feasible for any counts) every row term
    ``exp(r_p)`` below 1e-4 means the excess is tiny and the linearised model is accurate
    to about that factor; the others would spend their iterations where they cannot
    resolve it. Otherwise it comes second, after the default settings.
    """
    if model.level == "sample" or model.loss.name != "sc":
        # The linearised model is written for the SC loss at class and group level.
        return [a for a in attempts if not a.get("linearised")]
    k = model.spec.k
    B = np.full((model.dim, model.dim), -1.0 / (k - 1))
    terms = block_terms(B, model.sizes, model.block_counts, model.spec.tau)
    rows = terms.rowlse[np.isfinite(terms.rowlse)]
    first = [a for a in attempts if a.get("linearised")]
    rest = [a for a in attempts if not a.get("linearised")]
    if rows.size and float(np.max(rows)) < np.log(1e-4):
        return first + rest
    return rest[:1] + first + rest[1:]


def _usable(X: np.ndarray | None) -> bool:
    return X is not None and bool(np.all(np.isfinite(X)))


def _good_enough(rounded: Rounded) -> bool:
    """Certified gaps within :data:`GOOD_ENOUGH`: no further settings are tried."""
    return max(badness(rounded.cert, GOOD_ENOUGH),
               badness(rounded.sample_cert, GOOD_ENOUGH)) <= 1.0


def _score(rounded: Rounded | None) -> tuple[bool, float]:
    """Order of attempts (smaller is better): certified under the solve's tolerances
    first, and among those the smallest gaps relative to :data:`GOOD_ENOUGH`; otherwise
    the smallest gaps relative to the solve's tolerances."""
    if rounded is None:
        return (True, math.inf)
    if rounded.worst > 1.0:
        return (True, rounded.worst)
    return (False, max(badness(rounded.cert, GOOD_ENOUGH),
                       badness(rounded.sample_cert, GOOD_ENOUGH)))


for _name in ("clarabel", "scs"):
    register(Backend(_name, ("group", "class", "sample"), _DEFAULTS[_name], ("cvxpy", _name),
                     _run(_name), relaxations=("elliptope", "dnn"), uses_rounder=True))
