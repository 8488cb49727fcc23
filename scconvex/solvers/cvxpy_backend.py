"""cvxpy models of the relaxation, solved with Clarabel or SCS.

Class and group level use one variable, the ``g x g`` block Gram ``Q`` of
:func:`scconvex.levels.blocks.block_gram` (``Q = M`` at class level): PSD, ``Q_pp = 1`` for a
block of one class and ``Q_pp <= m_p`` (``a_p <= 1``) otherwise. Every cosine is an affine
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
once, by the pipeline's rounder (:class:`scconvex.certificates.certify.Rounder`: its
tolerances and deadline); the pipeline reuses the rounding of the answer chosen. The chosen
attempt is named in the raw message. Called on its own, without a rounder, the backend
cannot score its answers and keeps the first one the solver calls optimal.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..levels import CLASS, GROUP, SAMPLE
from ..levels.blocks import from_block_gram
from ..problem.model import Model
from ..resources import fastest_run
from .base import Backend, RawResult, register

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
        objective = cp.Minimize(model.loss.cvxpy_linearised_objective(model, B))
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


def _sample_problem(model: Model):
    import cvxpy as cp

    n = model.spec.n
    G = cp.Variable((n, n), PSD=True)
    objective = cp.Minimize(model.loss.cvxpy_sample_objective(model, G))
    constraints = [cp.diag(G) == 1.0] + model.relaxation.cvxpy_constraints(model, G)
    return cp.Problem(objective, constraints), G


CLARABEL_SETUP_FACTOR = 10.0
"""Clarabel's set-up and first iteration, in dense Cholesky factorizations of its PSD
cone's size (``t = m (m + 1) / 2`` rows): measured 6 to 9.5 at ``n = 60..105`` on a
2-core machine, against numpy's (one BLAS thread). It cannot be interrupted: its time
limit is checked between iterations only, so an attempt is not started with less time
left than this, and is given its limit less half of it (one more iteration)."""

CLARABEL_SETUP_MIN = 1500
"""Cones of fewer rows set up in well under a second: no estimate is made."""


def clarabel_setup_seconds(model: Model) -> float:
    """Seconds Clarabel takes to set up a model and run its first iteration, here and now.

    One dense Cholesky factorization of at most 800 rows is timed (best of three, so a
    loaded machine predicts more) and extrapolated cubically to the ``t x t`` block of the
    PSD cone, times :data:`CLARABEL_SETUP_FACTOR`. Zero below :data:`CLARABEL_SETUP_MIN`.
    """
    m = model.dim
    t = m * (m + 1) / 2
    if t < CLARABEL_SETUP_MIN:
        return 0.0
    s = int(min(t, 800))
    A = np.random.default_rng(0).standard_normal((s, s))
    A = A @ A.T + s * np.eye(s)
    return CLARABEL_SETUP_FACTOR * fastest_run(lambda: np.linalg.cholesky(A)) * (t / s) ** 3


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
    def run(model: Model, options: dict, rounder=None) -> RawResult:
        t0 = time.perf_counter()
        limit = options["time_limit"]
        best = None
        iterations = 0
        tried = 0
        built: dict[bool, tuple] = {}  # cvxpy problems by "linearised", compiled once
        # Clarabel's set-up ignores the time limit: an attempt that cannot end in time is
        # not started.
        need = clarabel_setup_seconds(model) if name == "clarabel" and limit else 0.0
        for attempt in _ordered(ATTEMPTS[name], model):
            left = None if limit is None else limit - (time.perf_counter() - t0)
            if left is not None and not tried and need > left:
                m = model.dim
                return RawResult("time_limit", None, (
                    f"{left:.3g} s left of the time limit, and clarabel needs about "
                    f"{need:.1f} s to set up a {m} x {m} model on this machine now, before "
                    f"its first iteration; raise --time-limit" + (
                        " or solve at class or group level" if model.level.dense else "")))
            if tried and left is not None and (left <= 0 or need > left):
                break
            linear = bool(attempt.get("linearised"))
            if linear not in built:
                built[linear] = (_sample_problem(model) if model.level.dense
                                 else _block_problem(model, linearised=linear))
            # Clarabel checks its limit between iterations, after its set-up: it may run
            # one iteration past it. Half the set-up estimate covers that (measured: at
            # n = 90 an iteration takes a quarter of the set-up and first iteration).
            raw = run_once(model, built[linear], options, attempt,
                           None if left is None else max(left - need / 2, 1e-3))
            tried += 1
            iterations += raw.iterations
            rounded = rounder(raw.X) if rounder is not None and _usable(raw.X) else None
            score = _score(rounded)
            if best is None or score < best[0]:
                best = (score, raw, attempt, rounded)
            if (rounded is not None and _good_enough(rounded)
                    or rounder is None and raw.status == "optimal"
                    or raw.status in ("time_limit", "error")):
                # Without a rounder (the backend called on its own) the answers cannot
                # be scored: the first the solver calls optimal is kept.
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
            if not model.level.dense:
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
    if model.level.dense or not model.loss.linearised:
        # The linearised model is one of the block form, and not every loss has one.
        return [a for a in attempts if not a.get("linearised")]
    k = model.spec.k
    B = np.full((model.dim, model.dim), -1.0 / (k - 1))
    terms = model.loss.block_terms(B, model.sizes, model.block_counts, model.spec.tau)
    rows = terms.rowlse[np.isfinite(terms.rowlse)]
    first = [a for a in attempts if a.get("linearised")]
    rest = [a for a in attempts if not a.get("linearised")]
    if rows.size and float(np.max(rows)) < np.log(1e-4):
        return first + rest
    return rest[:1] + first + rest[1:]


def _usable(X: np.ndarray | None) -> bool:
    return X is not None and bool(np.all(np.isfinite(X)))


def _good_enough(rounded) -> bool:
    """Certified gaps within :data:`GOOD_ENOUGH`: no further settings are tried."""
    return rounded.badness(GOOD_ENOUGH) <= 1.0


def _score(rounded) -> tuple[bool, float]:
    """Order of attempts (smaller is better): certified under the solve's tolerances
    first, and among those the smallest gaps relative to :data:`GOOD_ENOUGH`; otherwise
    the smallest gaps relative to the solve's tolerances."""
    if rounded is None:
        return (True, math.inf)
    if rounded.worst > 1.0:
        return (True, rounded.worst)
    return (False, rounded.badness(GOOD_ENOUGH))


for _name in ("clarabel", "scs"):
    register(Backend(_name, (GROUP, CLASS, SAMPLE), _DEFAULTS[_name], ("cvxpy", _name),
                     _run(_name), relaxations=("elliptope", "dnn"), uses_rounder=True))
