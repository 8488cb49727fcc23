"""Extreme regimes (issue 8, item 9): each one is certified or refused with a clear error.

References are independent of scconvex: closed forms, mpmath (the STEP reference in
``benchmarks/reference.py`` and a plane parametrisation below), and bounds that hold
whatever a solver returns (a certified lower bound lies below the loss of every feasible
point). ``docs/regimes.md`` lists the measured outcome of each regime.
"""

import math
import sys
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
from scipy.optimize import minimize

from scconvex import InvalidInputError, ProblemSpec, sc_loss, solve
from scconvex.problem.model import TAU_RANGE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference import step_cosines  # noqa: E402


def mp_excess(M, counts, tau, dps=40):
    """``L - sum n_c log(n_c - 1)`` of a class Gram, in mpmath (MATH.md section 4)."""
    k = len(counts)
    with mp.workdps(dps):
        total = mp.mpf(0)
        for c in range(k):
            if counts[c] < 2:
                continue
            s = mp.fsum(counts[j] * mp.exp((mp.mpf(float(M[c, j])) - 1) / tau)
                        for j in range(k) if j != c)
            total += counts[c] * mp.log1p(s / (counts[c] - 1))
        return total


def plane_reference(counts, tau):
    """Three class means in a plane (angles 0, t1, t2) minimising the log of the excess
    loss, evaluated in mpmath: an independent optimum for k = 3 (rank <= 2)."""
    def log_excess(theta):
        ang = np.concatenate([[0.0], theta])
        return float(mp.log(mp_excess(np.cos(ang[:, None] - ang[None, :]), counts, tau,
                                      dps=30)))

    best = min((minimize(log_excess, start, method="Nelder-Mead",
                         options={"xatol": 1e-11, "fatol": 1e-14, "maxiter": 4000})
                for start in ([2 * math.pi / 3, 4 * math.pi / 3], [2.5, 3.8])),
               key=lambda r: r.fun)
    ang = np.concatenate([[0.0], best.x])
    return np.cos(ang[:, None] - ang[None, :])


def check_bounds(res, *feasible):
    """What holds whatever the solver returned: a valid, feasible, certified answer."""
    assert res.status == "optimal", res.message
    assert res.min_eigenvalue >= 0
    counts, tau = res.spec.counts, res.spec.tau
    excess = mp_excess(res.class_gram, counts, tau)
    # The reported excess loss is the excess of the reported geometry.
    assert float(excess) == pytest.approx(res.excess_loss, rel=1e-9)
    # The certified lower bound (relative to the excess) lies below every feasible point.
    lower = excess * (1 - mp.mpf(res.sample_certificate.excess_gap))
    for M in feasible:
        assert lower <= mp_excess(M, counts, tau) * (1 + mp.mpf(1e-12))


def etf(k):
    M = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(M, 1.0)
    return M


# ---------------------------------------------------------------------- temperature
@pytest.mark.parametrize("tau", [1e-308, 2e-308, 1e-6, 1e101, 1.7e308])
def test_temperatures_outside_the_range_are_refused(tau):
    with pytest.raises(InvalidInputError, match="tau"):
        solve(ProblemSpec((5, 3, 2), tau))


def test_refusal_is_one_line_from_the_cli():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--counts", "5,3,2",
                          "--tau", "1e-308"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "tau" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("tau", [1e-4, 0.005, 0.01, 100.0])
def test_three_classes_match_plane_reference(tau):
    counts = (5, 3, 2)
    res = solve(ProblemSpec(counts, tau))
    ref = plane_reference(counts, tau)
    check_bounds(res, ref, etf(3), np.eye(3))
    np.testing.assert_allclose(res.class_gram, ref, atol=1e-6)
    assert res.unique


@pytest.mark.parametrize("tau", [1e4, 1e6])
def test_huge_temperature_is_bracketed_honestly(tau):
    # At huge tau the loss is almost linear in the cosines: certified, and the optimum is
    # unique (a proof), but the certified gap pins the cosines only so far: the bars say
    # how far, and contain the 50-digit optimum. At 1e6 they span the whole range, and the
    # message says the cosines are not determined.
    from reference import class_reference

    res = solve(ProblemSpec((5, 3, 2), tau))
    check_bounds(res, etf(3), np.eye(3))
    truth, _ = class_reference((5, 3, 2), tau, res.class_gram, dps=50)
    truth = np.array([[float(x) for x in row] for row in truth])
    bars = res.bars
    assert res.unique is True
    assert np.all((truth >= bars.lower - 1e-15) & (truth <= bars.upper + 1e-15))
    assert bars.max_half_width > 1e-6
    if bars.max_half_width > 1e-3:
        assert "not determined" in res.message


@pytest.mark.parametrize("tau", [1e-4, 1e4])
def test_balanced_closed_form_at_extreme_temperatures(tau):
    k, m = 6, 4
    res = solve(ProblemSpec((m,) * k, tau))
    n = k * m
    # Excess of the simplex ETF, n log1p((n - m)/(m - 1) exp(-k / ((k - 1) tau))), in mpmath.
    with mp.workdps(40):
        expected = n * mp.log1p(mp.mpf(n - m) / (m - 1) * mp.exp(-mp.mpf(k) / ((k - 1) * tau)))
    assert res.status == "optimal"
    assert res.excess_loss == pytest.approx(float(expected), rel=1e-9)


def test_lowest_supported_temperature_certifies():
    res = solve(ProblemSpec((9, 5, 3), TAU_RANGE[0]))
    assert res.status == "optimal", res.message


# ---------------------------------------------------------------------- imbalance
@pytest.mark.parametrize("ratio", [1e2, 1e4, 1e6])
def test_step_imbalance_up_to_a_million_matches_mpmath(ratio):
    tau = 0.1
    spec = ProblemSpec.step(10, 0.5, ratio, 5, tau)
    res = solve(spec)
    (s1, m1), (s2, m2) = spec.groups
    a1, a2, b = step_cosines(m1, s1, m2, s2, tau, dps=40)
    M = res.class_gram
    check_bounds(res, etf(10), np.eye(10))
    assert abs(M[0, 1] - a1) < 1e-7 and abs(M[-1, -2] - a2) < 1e-6 and abs(M[0, -1] - b) < 1e-7


def test_long_tail_imbalance_of_a_million_is_certified():
    spec = ProblemSpec.long_tail(8, 1e6, 10**7, 0.1)
    assert spec.counts[0] / spec.counts[-1] == pytest.approx(1e6, rel=1e-6)
    res = solve(spec)
    check_bounds(res, etf(8), np.eye(8))


# ---------------------------------------------------------------------- large counts
def test_counts_of_a_billion_group_level():
    c = 10**9
    spec = ProblemSpec((c, c, 5), 0.5)
    res = solve(spec)
    assert res.level == "group"
    check_bounds(res, etf(3), np.eye(3))
    # The loss itself, recomputed in mpmath from the geometry (no float64 cancellation).
    with mp.workdps(40):
        const = sum(n * mp.log(n - 1) for n in spec.counts)
        loss = const + mp_excess(res.class_gram, spec.counts, 0.5)
    assert res.loss == pytest.approx(float(loss), rel=1e-12)


def test_two_classes_of_a_billion_and_one():
    # k = 2: the means are antipodal; L = n1 log(n1 - 1 + n2 exp(-2 / tau)).
    c, tau = 10**9, 0.1
    res = solve(ProblemSpec((c, 1), tau))
    assert res.status == "optimal"
    assert res.class_gram[0, 1] == pytest.approx(-1.0, abs=1e-9)
    with mp.workdps(40):
        expected = c * mp.log(c - 1 + mp.exp(-2 / mp.mpf(tau)))
    assert res.loss == pytest.approx(float(expected), rel=1e-14)


@pytest.mark.parametrize("tau", [0.01, 1.0])
def test_two_classes_closed_form(tau):
    res = solve(ProblemSpec((5, 3), tau))
    check_bounds(res, np.eye(2))
    assert res.class_gram[0, 1] == pytest.approx(-1.0, abs=1e-9)
    with mp.workdps(40):
        e = mp.exp(-2 / mp.mpf(tau))
        expected = 5 * mp.log1p(3 * e / 4) + 3 * mp.log1p(5 * e / 2)
    assert res.excess_loss == pytest.approx(float(expected), rel=1e-10)


# ---------------------------------------------------------------------- many classes
def test_hundred_thousand_classes_step_matches_mpmath():
    tau = 0.1
    spec = ProblemSpec.step(100_000, 0.5, 10, 5, tau)
    res = solve(spec)
    assert res.level == "group" and res.status == "optimal", res.message
    (s1, m1), (s2, m2) = spec.groups
    a1, a2, b = step_cosines(m1, s1, m2, s2, tau, dps=40)
    B = res.variable
    assert abs(B[0, 0] - a1) < 1e-9 and abs(B[1, 1] - a2) < 1e-9 and abs(B[0, 1] - b) < 1e-9


def test_hundred_thousand_balanced_classes_are_the_etf():
    k = 100_000
    res = solve(ProblemSpec((3,) * k, 0.2))
    assert res.status == "optimal"
    assert res.variable[0, 0] == pytest.approx(-1.0 / (k - 1), abs=1e-15)


# ---------------------------------------------------------------------- singletons
@pytest.mark.parametrize("counts,tau", [((10, 10, 1, 1, 1), 0.01), ((10, 1, 1), 0.1),
                                        ((2, 1, 1, 1), 0.1), ((5, 5, 3, 1, 1), 0.3)])
def test_singleton_classes_certify_with_auto_level(counts, tau):
    # Issue 8, observation 9: auto used to pick a group level that could not certify.
    spec = ProblemSpec(counts, tau)
    res = solve(spec)
    cls = solve(spec, level="class")
    assert res.status == "optimal", res.message
    assert cls.status == "optimal", cls.message
    assert res.sample_lower_bound <= cls.loss and cls.sample_lower_bound <= res.loss
    k = len(counts)
    check_bounds(res, etf(k), np.eye(k))


@pytest.mark.parametrize("counts", [(10, 1, 1), (2, 1, 1, 1)])
def test_one_large_class_and_singletons_closed_form(counts):
    # Only the large class has anchors; all singletons sit opposite it (cosine -1), which
    # also forces their mutual cosines to 1: L = n1 log(n1 - 1 + (k - 1) exp(-2 / tau)).
    tau = 0.1
    res = solve(ProblemSpec(counts, tau))
    k, n1 = len(counts), counts[0]
    np.testing.assert_allclose(res.class_gram[0, 1:], -1.0, atol=1e-6)
    with mp.workdps(40):
        expected = n1 * mp.log1p((k - 1) * mp.exp(-2 / mp.mpf(tau)) / (n1 - 1))
    assert res.excess_loss == pytest.approx(float(expected), rel=1e-9)
    assert res.unique


def test_singleton_group_level_matches_class_level():
    spec = ProblemSpec((6, 6, 4, 1, 1, 1), 0.2)
    group = solve(spec, level="group")
    cls = solve(spec, level="class")
    assert group.status == cls.status == "optimal"
    np.testing.assert_allclose(group.class_gram, cls.class_gram, atol=1e-6)


def test_single_sample_classes_are_pinned_by_the_optimum():
    # Counts 4,1,1: the cosine between the two single-sample classes enters no term, yet
    # the optimum is unique (docs/theory.md section 10.3): both sit opposite the large
    # class, at cosine 1 to each other, and the proven interval says so.
    res = solve(ProblemSpec((4, 1, 1), 0.5), level="class")
    assert res.unique is True and "KKT" in res.bars.reason
    assert res.bars.lower[1, 2] > 1 - 1e-6
    np.testing.assert_allclose(res.class_gram[0, 1:], -1.0, atol=1e-6)


# ---------------------------------------------------------------------- sample level
def test_sample_level_small_problem_certifies():
    # Issue 8, observation 9: 4,3,2 at tau 0.5 at sample level was not certified.
    spec = ProblemSpec((4, 3, 2), 0.5)
    res = solve(spec, level="sample")
    cls = solve(spec, level="class")
    assert res.status == "optimal", res.message
    assert res.sample_lower_bound <= cls.loss and cls.sample_lower_bound <= res.loss
    assert res.unique
    lab = spec.labels
    H = np.linalg.cholesky(res.variable + 1e-12 * np.eye(spec.n))
    assert sc_loss(H, lab, 0.5) == pytest.approx(res.loss, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_sample_level_against_class_level(tau):
    spec = ProblemSpec((6, 4, 3, 2), tau)
    res = solve(spec, level="sample", solver="clarabel")
    cls = solve(spec, level="class", solver="native")
    assert cls.status == "optimal"
    assert res.status in ("optimal", "uncertified")
    assert res.sample_lower_bound <= cls.loss and cls.sample_lower_bound <= res.loss


# ---------------------------------------------------------------------- level choice
def test_auto_level_retries_at_class_level_and_says_so():
    # A starved native solver cannot certify at group level; auto must try class level
    # (which cannot certify either with one iteration) and report both, not hide them.
    spec = ProblemSpec((7, 7, 4, 4, 2), 0.3)
    res = solve(spec, solver="native", options={"max_iter": 1})
    assert res.status == "uncertified"
    assert "group level not certified" in res.message and "class level" in res.message
    explicit = solve(spec, level="group", solver="native", options={"max_iter": 1})
    assert "class level" not in explicit.message


def test_auto_level_never_worse_than_class_level_on_singletons(rng):
    for _ in range(5):
        big = tuple(int(c) for c in rng.integers(2, 12, size=int(rng.integers(1, 4))))
        counts = big + big[:1] + (1,) * int(rng.integers(1, 5))
        spec = ProblemSpec(counts, float(rng.choice([0.02, 0.1, 0.5])))
        cls = solve(spec, level="class")
        auto = solve(spec)
        assert cls.status == "optimal", (counts, cls.message)
        assert auto.status == "optimal", (counts, auto.message)


@pytest.mark.parametrize("counts,level", [((7, 5, 3, 1, 1), "class"),
                                          ((6, 6, 4, 4, 4, 2, 1), "group")])
def test_relative_hessian_matches_second_differences(rng, counts, level):
    from scconvex.certificates.uniqueness import relative_hessian
    from scconvex.losses.sc import block_terms
    from scconvex.problem.model import build_model

    tau = 0.4
    model = build_model(ProblemSpec(counts, tau), level)
    g = model.dim
    B = rng.uniform(-0.4, 0.2, size=(g, g))
    B = 0.5 * (B + B.T)
    H, (rows, cols) = relative_hessian(model, B)
    v = rng.standard_normal(rows.size)
    E = np.zeros((g, g))
    E[rows, cols] = v
    E[cols, rows] = v

    def excess(t):
        return block_terms(B + t * E, model.sizes, model.block_counts, tau).excess

    t = 1e-4
    second = (excess(t) - 2 * excess(0.0) + excess(-t)) / t**2 / excess(0.0)
    assert float(v @ H @ v) == pytest.approx(second, rel=1e-5)
