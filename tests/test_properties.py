"""Property tests (hypothesis): invariances, reductions, certificate soundness, verify.

References are written here from MATH.md, independently of the package: the class-level
excess loss ``_excess`` (section 4, in log1p form) and the lift of a collapsed geometry to
samples. Examples are derandomised so the suite is the same on every machine.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
from conftest import honest_claims
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp

from scconvex import ProblemSpec, solve
from scconvex.certificates.certify import certify
from scconvex.certificates.verify import verify_data
from scconvex.losses.sc import block_loss, class_loss, sc_loss, sc_loss_gram
from scconvex.problem.model import build_model, class_gram

FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
SOLVES = settings(max_examples=20, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**32 - 1)
taus = st.floats(0.05, 5.0)
count_vectors = st.lists(st.integers(1, 6), min_size=2, max_size=6).filter(
    lambda c: max(c) >= 2)


# ---------------------------------------------------------------------- references
def _constant(counts) -> float:
    return sum(n * math.log(n - 1) for n in counts if n >= 2)


def _excess(M, counts, tau) -> float:
    """``L - sum n_c log(n_c - 1)`` of a class Gram (MATH.md section 4), log1p form."""
    counts = np.asarray(counts, dtype=float)
    total = 0.0
    for c, nc in enumerate(counts):
        if nc < 2:
            continue
        others = np.arange(len(counts)) != c
        z = np.log(counts[others] / (nc - 1)) + (np.asarray(M)[c, others] - 1.0) / tau
        total += nc * math.log1p(math.exp(logsumexp(z)))
    return total


def _random_gram(rng, k: int) -> np.ndarray:
    """A random feasible class Gram of random rank (unit rows of a random factor)."""
    U = rng.standard_normal((k, int(rng.integers(1, k + 1))))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return U @ U.T


# ---------------------------------------------------------------------- sc_loss
@FAST
@given(counts=count_vectors, d=st.integers(1, 5), tau=taus, seed=seeds)
def test_sc_loss_invariant_to_rotation_and_relabelled_permutation(counts, d, tau, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    H = rng.standard_normal((len(labels), d))
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    value = sc_loss(H, labels, tau)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    assert math.isclose(sc_loss(H @ Q, labels, tau), value, rel_tol=1e-11, abs_tol=1e-11)
    perm = rng.permutation(len(labels))
    assert math.isclose(sc_loss(H[perm], labels[perm], tau), value, rel_tol=1e-11,
                        abs_tol=1e-11)
    # Renaming the classes changes nothing either.
    names = rng.permutation(len(counts)) * 7 + 3
    assert math.isclose(sc_loss(H, names[labels], tau), value, rel_tol=1e-11,
                        abs_tol=1e-11)


# ---------------------------------------------------------------------- reductions
@FAST
@given(counts=count_vectors, tau=taus, seed=seeds)
def test_group_class_sample_losses_agree(counts, tau, seed):
    rng = np.random.default_rng(seed)
    spec = ProblemSpec(counts, tau)
    group = build_model(spec, "group")
    g = len(group.sizes)
    # A random collapsed geometry at group level, made feasible through its class Gram.
    V = rng.standard_normal((g, g))
    B = np.clip(V @ V.T / g, -1, 1)
    B = 0.5 * (B + B.T)
    M = B[np.ix_(group.block_of, group.block_of)]
    np.fill_diagonal(M, 1.0)
    labels = spec.labels
    G = M[np.ix_(labels, labels)]  # lift: within-class cosines are 1
    at_group = block_loss(B, group.sizes, group.block_counts, tau)
    at_class = class_loss(M, counts, tau)
    at_sample = sc_loss_gram(G, labels, tau)
    reference = _constant(counts) + _excess(M, counts, tau)
    for value in (at_group, at_class, at_sample):
        assert math.isclose(value, reference, rel_tol=1e-11, abs_tol=1e-11)
    assert np.allclose(class_gram(group, B), M, atol=0)


# ---------------------------------------------------------------------- certificates
def _near_optimum(counts, tau, seed) -> float:
    """An upper bound on the relaxed optimum: the loss of a feasible point found by scipy.

    Unit rows of a full-rank factor ``U`` reach every feasible class Gram, so the minimum
    over ``U`` is the relaxed optimum; whatever scipy returns is a feasible value above it.
    """
    k = len(counts)
    rng = np.random.default_rng(seed)

    def value(x):
        U = x.reshape(k, k)
        U = U / np.linalg.norm(U, axis=1, keepdims=True)
        return math.log(_excess(U @ U.T, counts, tau))

    best = math.inf
    for _ in range(2):
        res = minimize(value, rng.standard_normal(k * k), method="L-BFGS-B")
        best = min(best, res.fun)
    return _constant(counts) + math.exp(best)


@FAST
@given(counts=count_vectors, tau=st.floats(0.1, 5.0), seed=seeds)
def test_certified_lower_bound_never_exceeds_a_feasible_loss(counts, tau, seed):
    rng = np.random.default_rng(seed)
    spec = ProblemSpec(counts, tau)
    model = build_model(spec, "class")
    k = len(counts)
    X, Y = _random_gram(rng, k), _random_gram(rng, k)
    cls, smp = certify(model, X)
    loss_X = _constant(counts) + _excess(X, counts, tau)
    loss_Y = _constant(counts) + _excess(Y, counts, tau)
    slack = 1e-12 * max(1.0, abs(loss_X))
    assert math.isclose(cls.loss, loss_X, rel_tol=1e-11)
    # A lower bound holds against every feasible point, not only the one it was built at.
    for bound in (cls.lower_bound, smp.lower_bound):
        assert bound <= loss_X + slack and bound <= loss_Y + slack
    # ... and against the sample loss of features that are not collapsed at all.
    labels = spec.labels
    H = rng.standard_normal((spec.n, 3))
    assert smp.lower_bound <= sc_loss(H, labels, tau) + slack


@settings(max_examples=6, deadline=None, derandomize=True)
@given(counts=st.lists(st.integers(1, 6), min_size=2, max_size=4).filter(
    lambda c: max(c) >= 2), tau=st.floats(0.1, 2.0), seed=seeds)
def test_certified_lower_bound_never_exceeds_the_optimum(counts, tau, seed):
    rng = np.random.default_rng(seed)
    spec = ProblemSpec(counts, tau)
    upper = _near_optimum(counts, tau, seed)  # >= the optimum, found without scconvex
    slack = 1e-12 * max(1.0, abs(upper))
    model = build_model(spec, "class")
    for X in (_random_gram(rng, len(counts)), np.eye(len(counts))):
        cls, smp = certify(model, X)
        assert cls.lower_bound <= upper + slack and smp.lower_bound <= upper + slack
    res = solve(spec, level="class")
    assert res.lower_bound <= upper + slack and res.sample_lower_bound <= upper + slack


# ---------------------------------------------------------------------- verify
spec_for_verify = st.tuples(
    st.lists(st.integers(1, 12), min_size=2, max_size=5).filter(lambda c: max(c) >= 2),
    st.floats(0.02, 2.0))


def _solved(counts, tau):
    res = solve(ProblemSpec(counts, tau))
    return res, json.loads(json.dumps(res.to_dict()))  # exactly what a file holds


@SOLVES
@given(problem=spec_for_verify)
def test_verify_accepts_what_solve_wrote(problem):
    counts, tau = problem
    res, data = _solved(counts, tau)
    report = verify_data(data, res.gap_tol, res.excess_tol)
    event(f"{res.level} level, {res.status}")
    assert report.ok == res.success, report.reasons
    if not res.success:
        assert any("status" in r for r in report.reasons)


def _mix(data, t):
    """Move the stored geometry a fraction ``t`` towards orthogonal class means."""
    spec = ProblemSpec.from_dict(data["spec"])
    model = build_model(spec, data["level"])
    if data["level"] == "group":
        B = np.array(data["groups"]["gram"])
        B = (1 - t) * B + t * model.identity()
        data["groups"]["gram"] = B.tolist()
        if data["class_gram"] is not None:
            data["class_gram"] = class_gram(model, B).tolist()
    else:
        M = np.array(data["class_gram"])
        data["class_gram"] = ((1 - t) * M + t * np.eye(len(M))).tolist()


@SOLVES
@given(problem=spec_for_verify, log_t=st.integers(-9, -1), honest=st.booleans())
def test_verify_never_accepts_a_geometry_it_cannot_vouch_for(problem, log_t, honest):
    """Whatever is accepted is, by an independent evaluation, within tolerance of optimal.

    ``E0`` (the excess of the geometry solve wrote, evaluated here) bounds the optimum's
    excess from above, and an accepted certificate proves ``E - E_opt <= excess_tol * E``;
    so an accepted geometry must satisfy ``E <= E0 / (1 - excess_tol)``.
    """
    counts, tau = problem
    res, data = _solved(counts, tau)
    assume(res.success)
    spec = ProblemSpec(counts, tau)
    e0 = _excess(class_gram(res.model, res.variable), counts, tau)
    forged = copy.deepcopy(data)
    _mix(forged, 10**log_t)
    if honest:
        honest_claims(forged)
    report = verify_data(forged, res.gap_tol, res.excess_tol)
    model = build_model(spec, data["level"])
    X = np.array(forged["groups"]["gram"] if data["level"] == "group"
                 else forged["class_gram"])
    e = _excess(class_gram(model, X), counts, tau)
    event(f"{'accepted' if report.ok else 'rejected'}, honest claims {honest}, t=1e{log_t}")
    if report.ok:
        assert e <= e0 / (1 - res.excess_tol) * (1 + 1e-9)
        # Accepted claims describe the stored geometry.
        assert math.isclose(forged["excess_loss"], e, rel_tol=1e-8)
    elif not honest:
        assert any("tampered" in r or "gap too large" in r for r in report.reasons)
    if e > e0 / (1 - res.excess_tol) * (1 + 1e-6):
        assert not report.ok


FIELDS = ("loss", "excess_loss", "lower_bound", "sample_lower_bound", "gap", "sample_gap",
          "rel_gap", "sample_rel_gap", "excess_gap", "sample_excess_gap", "min_eigenvalue",
          "rank", "status", "tau", "counts", "n", "k", "level", "asymmetric", "diagonal")


def _corrupt(data: dict, field: str, factor: float, sign: int) -> dict | None:
    """``data`` with one field corrupted beyond what the verifier may let pass, or None.

    Each change is ``factor`` (10 to 1e4) times the agreement the verifier allows for that
    field (docs/verification.md).
    """
    bad = copy.deepcopy(data)
    L = abs(data["loss"])
    change = {
        "loss": 1e-12 * L, "lower_bound": 1e-12 * L, "sample_lower_bound": 1e-12 * L,
        "gap": 1e-9 * L, "sample_gap": 1e-9 * L,
        "rel_gap": 1e-9, "sample_rel_gap": 1e-9, "excess_gap": 1e-6,
        "sample_excess_gap": 1e-6, "excess_loss": 1e-9 * data["excess_loss"],
        "min_eigenvalue": 1e-10,
    }
    if field in change:
        bad[field] = data[field] + sign * factor * change[field]
    elif field == "rank":
        bad["rank"] = data["rank"] + sign
    elif field == "status":
        bad["status"] = "uncertified" if sign > 0 else "failed"
    elif field == "tau":
        bad["tau"] = data["tau"] * (1 + sign * 1e-9 * factor)
    elif field == "counts":
        bad["counts"] = data["counts"][:-1] + [data["counts"][-1] + 1]
    elif field in ("n", "k"):
        bad[field] = data[field] + sign
    elif field == "level":
        bad["level"] = {"group": "class", "class": "group"}[data["level"]]
    else:
        gram = bad["groups"]["gram"] if data["level"] == "group" else bad["class_gram"]
        if field == "asymmetric":
            if len(gram) < 2:
                return None
            gram[0][1] += sign * 1e-10 * factor
        else:
            if data["level"] == "group" and data["groups"]["sizes"][-1] >= 2:
                return None  # a within-group cosine there, not a diagonal entry
            gram[-1][-1] += sign * 1e-10 * factor
    return bad


@SOLVES
@given(problem=spec_for_verify, size=st.floats(0, 1), sign=st.sampled_from([-1, 1]))
def test_verify_rejects_corrupted_claims_and_geometry(problem, size, sign):
    counts, tau = problem
    res, data = _solved(counts, tau)
    assume(res.success)
    event(f"{res.level} level")
    for field in FIELDS:
        bad = _corrupt(data, field, 10 ** (1 + 3 * size), sign)
        if bad is None:
            continue
        assert bad != data
        report = verify_data(bad, res.gap_tol, res.excess_tol)
        assert not report.ok, (field, bad.get(field))
