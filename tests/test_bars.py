"""Certified cosine bars (issue 17): every bar must contain the optimum.

References are independent of the code under test: the 40-digit mpmath KKT solutions of
``benchmarks/reference.py`` (``class_reference``, checked there by ``S`` PSD), the mpmath
STEP reference, and closed forms (the simplex ETF). The bars are checked at the solver's
answers, whatever they are, and at feasible points moved off the optimum, where the gap
is larger and the bars are wide.
"""

import copy
import json
import math
import sys
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest

from scconvex import ProblemSpec, sc_loss_gram, solve
from scconvex.certificates.bars import cosine_bars
from scconvex.certificates.certify import certify
from scconvex.certificates.repair import repair
from scconvex.problem.model import build_model
from scconvex.solvers.refine import polish

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from conftest import forge  # noqa: E402
from reference import class_reference, step_reference  # noqa: E402


def bars_of(model, X, cert=None, scert=None, thorough=False):
    """The bars of a feasible block variable, from its own certificates."""
    if cert is None:
        cert, scert = certify(model, X)
    spec = model.spec
    return cosine_bars(model.sizes, model.block_counts, spec.tau, X, cert.excess_gap,
                       loss=spec.loss, relaxation=spec.relaxation,
                       sample_excess_gap=scert.excess_gap, thorough=thorough)


def assert_valid_box(model, X, bars, excess_gap):
    """The returned radii form a valid box (each bar inside its radius, or the radius is
    the whole range) and each bar is what the floor over that box gives."""
    from scconvex.certificates import bars as bars_module

    tau = model.spec.tau
    curvature = model.loss.curvature_rows(model.sizes, model.block_counts, tau)
    rows = bars_module._Rows(model.sizes, model.block_counts, tau, X, curvature, -1.0)
    full = bars_module._full_radius(rows)
    det = bars.determined
    R = np.where(det, bars.radius, full)
    assert np.all(((bars.half_width < R) | (R >= full))[det])
    if curvature.remainder:
        log_E = model.loss.block_terms(X, model.sizes, model.block_counts, tau).log_excess
        floor = bars_module._floor(rows, R, log_E)
        assert np.all(bars.half_width[det]
                      >= np.sqrt(2 * excess_gap / floor[det]) * (1 - 1e-9))
    return rows, R, full


def as_float(M):
    return np.array([[float(x) for x in row] for row in M])


def assert_contains(bars, B, truth):
    """Every cosine of ``truth`` lies in the proven interval, and within the bar of ``B``."""
    cos = bars.cosines
    assert np.all(truth[cos] >= bars.lower[cos]), np.max(bars.lower[cos] - truth[cos])
    assert np.all(truth[cos] <= bars.upper[cos]), np.max(truth[cos] - bars.upper[cos])
    det = bars.determined
    assert np.all(np.abs(B - truth)[det] <= bars.half_width[det])


# ---------------------------------------------------------------------- class level
CASES = [((5, 3, 2), 0.3, "sc"), ((9, 4, 2, 1), 0.1, "sc"), ((6, 5, 3, 2, 2), 1.0, "sc"),
         ((7, 3, 1, 1), 0.5, "sc"), ((4, 3, 2), 0.05, "sc"), ((30, 5, 2), 3.0, "sc"),
         ((5, 3, 2), 0.3, "negatives-only"), ((6, 5, 3, 2, 2), 1.0, "negatives-only"),
         ((7, 3, 2, 1, 1), 0.5, "negatives-only")]


@pytest.mark.parametrize("counts,tau,loss", CASES)
def test_bars_contain_the_mpmath_optimum(rng, counts, tau, loss):
    spec = ProblemSpec(counts, tau, loss=loss)
    model = build_model(spec, "class")
    res = solve(spec, level="class")
    truth, _ = class_reference(counts, tau, res.class_gram, dps=40,
                               negatives_only=loss != "sc")
    truth = as_float(truth)
    # At the solver's answer, whatever it is; both schedules of the box argument.
    for thorough in (False, True):
        bars = bars_of(model, res.variable, res.certificate, res.sample_certificate,
                       thorough)
        assert_contains(bars, res.variable, truth)
        assert_valid_box(model, res.variable, bars, res.certificate.excess_gap)
        assert bars.unique is True
    # At feasible points moved off the optimum (larger gaps, wider bars).
    for t in (1e-2, 1e-3, 1e-4):
        P = rng.standard_normal(truth.shape)
        X, _ = repair(model, truth + t * (P + P.T))
        cert, scert = certify(model, X)
        for thorough in (False, True):
            bars = bars_of(model, X, cert, scert, thorough)
            assert_contains(bars, X, truth)
            assert_valid_box(model, X, bars, cert.excess_gap)


@pytest.mark.parametrize("counts,tau,level", [((7, 3, 1, 1), 0.5, "class"),
                                              ((9, 4, 2, 1), 0.1, "class"),
                                              ((6, 6, 4, 4, 4, 2, 1), 0.3, "group"),
                                              ((30, 5, 2), 3.0, "class")])
def test_floor_is_below_the_curvature_everywhere_in_the_box(rng, counts, tau, level):
    """The floor ``D_e(R)`` against the exact Hessian (scconvex.uniqueness, checked by
    second differences in test_regimes) at the answer and at random points of the box:
    ``min_{v_e = 1} v^T H v = 1 / (H^-1)_ee`` must never be below it."""
    from scconvex.certificates import bars as bars_module
    from scconvex.certificates.uniqueness import relative_hessian

    spec = ProblemSpec(counts, tau)
    model = build_model(spec, level)
    X = solve(spec, level=level).variable
    X = (1 - 1e-4) * X + 1e-4 * model.identity()  # a gap well above rounding
    cert, _ = certify(model, X)
    bars = bars_of(model, X)
    rows, R, full = assert_valid_box(model, X, bars, cert.excess_gap)
    det = bars.determined
    log_E = model.loss.block_terms(X, model.sizes, model.block_counts, tau).log_excess
    floor = bars_module._floor(rows, R, log_E)
    # The bar is what the floor gives: sqrt(2 eps / D), rounded up.
    np.testing.assert_allclose(bars.half_width[det], np.sqrt(2 * cert.excess_gap / floor[det]),
                               rtol=1e-6)
    for trial in range(6):
        Y = X + R * rng.uniform(-1, 1, size=R.shape) if trial else X.copy()
        Y = np.clip(0.5 * (Y + Y.T), rows.lowest_matrix(), 1.0)
        H, (r, c) = relative_hessian(model, Y)
        exact = 1.0 / np.diag(np.linalg.inv(H))
        # relative_hessian is relative to the excess at Y; the floor to that at X.
        scale = math.exp(model.loss.block_terms(Y, model.sizes, model.block_counts,
                                                tau).log_excess - log_E)
        assert np.all(floor[r, c] <= exact * scale * (1 + 1e-9))
        if trial == 0:
            # Sharp at the answer: the per-coordinate floor is within a factor 3 of the
            # exact curvature there.
            assert np.all(bars_module._floor(rows, 0 * R, log_E)[r, c]
                          >= exact * scale / 3)


def test_bars_are_tight_at_a_good_answer():
    # At the float64 floor of the gap the bars of an ordinary problem are below 1e-6.
    res = solve(ProblemSpec((6, 5, 3, 2, 2), 0.3))
    bars = bars_of(res.model, res.variable, res.certificate, res.sample_certificate)
    assert res.certificate.excess_gap < 1e-11
    assert bars.max_half_width < 1e-5


def test_bars_shrink_like_the_square_root_of_the_gap():
    counts, tau = (6, 4, 3, 2), 0.4
    spec = ProblemSpec(counts, tau)
    model = build_model(spec, "class")
    truth = as_float(class_reference(counts, tau, solve(spec, level="class").class_gram,
                                     dps=40)[0])
    widths, gaps = [], []
    for t in (1e-3, 1e-5, 1e-7):
        # Towards the orthogonal frame: feasible, and the gap grows linearly in t.
        X = (1 - t) * truth + t * np.eye(len(counts))
        cert, scert = certify(model, X)
        widths.append(bars_of(model, X, cert, scert).max_half_width)
        gaps.append(cert.excess_gap)
    for i in range(2):
        expected = math.sqrt(gaps[i] / gaps[i + 1])
        assert 0.7 * expected <= widths[i] / widths[i + 1] <= 1.4 * expected


@pytest.mark.parametrize("k,tau", [(4, 0.02), (5, 1e-4), (3, 1e4), (6, 0.5)])
def test_balanced_bars_contain_the_simplex_etf(k, tau):
    res = solve(ProblemSpec((7,) * k, tau), level="class")
    bars = bars_of(res.model, res.variable, res.certificate, res.sample_certificate)
    etf = np.full((k, k), -1.0 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    assert_contains(bars, res.variable, etf)


# ---------------------------------------------------------------------- group level
@pytest.mark.parametrize("m1,s1,m2,s2,tau", [(5, 50, 5, 5, 0.5), (5, 5_000_000, 5, 5, 0.02),
                                             (3, 20, 2, 4, 0.3), (8, 1000, 2, 2, 0.1),
                                             (4, 200, 6, 3, 2.0)])
def test_group_bars_contain_the_step_reference(m1, s1, m2, s2, tau):
    spec = ProblemSpec((s1,) * m1 + (s2,) * m2, tau)
    res = solve(spec, level="group")
    ref = step_reference(m1, s1, m2, s2, tau)
    truth = np.array([[float(ref["a1"]), float(ref["b"])], [float(ref["b"]), float(ref["a2"])]])
    bars = bars_of(res.model, res.variable, res.certificate, res.sample_certificate)
    assert_contains(bars, res.variable, truth)
    assert bars.unique is True


def test_group_bars_hold_for_the_class_level_optimum():
    counts, tau = (6, 6, 4, 4, 4, 2, 1), 0.3
    spec = ProblemSpec(counts, tau)
    group = solve(spec, level="group")
    truth = as_float(class_reference(counts, tau, group.class_gram, dps=40)[0])
    bars = bars_of(group.model, group.variable, group.certificate,
                   group.sample_certificate)
    model = group.model
    lifted = np.ix_(model.block_of, model.block_of)
    off = ~np.eye(len(counts), dtype=bool)
    assert np.all(truth[off] >= bars.lower[lifted][off])
    assert np.all(truth[off] <= bars.upper[lifted][off])


# ---------------------------------------------------------------------- singletons
@pytest.mark.parametrize("counts,tau", [((10, 6, 4, 1, 1, 1), 0.3), ((2, 1, 1, 1), 0.5),
                                        ((20, 20, 2, 2, 1, 1), 0.1)])
def test_single_sample_cosines_are_pinned_and_bracketed(counts, tau):
    spec = ProblemSpec(counts, tau)
    res = solve(spec, level="class")
    truth = as_float(class_reference(counts, tau, res.class_gram, dps=40)[0])
    bars = bars_of(res.model, res.variable, res.certificate, res.sample_certificate)
    assert_contains(bars, res.variable, truth)
    single = np.flatnonzero(np.array(counts) == 1)
    pair = np.ix_(single, single)
    assert not np.any(bars.determined[pair])
    # Pinned by the KKT conditions: a narrow interval, not the whole range.
    assert np.max((bars.upper - bars.lower)[pair]) < 1e-3
    assert bars.unique is True and "KKT" in bars.reason


def test_kkt_formula_for_single_sample_classes_matches_the_reference():
    # nu_i = sum_c C_ic M_ic < 0 and M_ij = sum_c C_ic M_cj / nu_i at the optimum
    # (docs/theory.md section 10), checked on the 40-digit optimum itself.
    counts, tau = (10, 6, 4, 1, 1), 0.3
    start = solve(ProblemSpec(counts, tau), level="class").class_gram
    M, _ = class_reference(counts, tau, start, dps=40)
    with mp.workdps(40):
        C = [[mp.mpf(0)] * 5 for _ in range(5)]
        for c in range(3):
            terms = [counts[j] * mp.exp((M[c][j] - 1) / tau) if j != c else 0
                     for j in range(5)]
            den = counts[c] - 1 + mp.fsum(terms)
            for j in range(5):
                C[c][j] = counts[c] * terms[j] / den
        nu = mp.fsum(C[c][3] * M[c][3] for c in range(3))
        assert nu < 0
        predicted = mp.fsum(C[c][3] * M[c][4] for c in range(3)) / nu
        assert abs(predicted - M[3][4]) < mp.mpf(10) ** -25


def test_relu_singletons_are_not_claimed_unique():
    spec = ProblemSpec((100, 100, 1, 1, 1, 1), 2.0, relaxation="dnn")
    res = solve(spec)
    bars = bars_of(res.model, res.variable, res.certificate, res.sample_certificate)
    assert bars.unique is None and "not proven" in bars.reason
    # The orthogonal frame with aligned singletons is optimal too (docs/variants.md):
    # its cosines 0.75 between singletons must lie in the intervals.
    model = res.model
    M = model.identity()
    single = model.block_counts == 1
    M[np.ix_(single, single)] = 0.75 + 0.25 * np.eye(int(np.sum(single)))
    assert np.all((M >= bars.lower) & (M <= bars.upper))


# ---------------------------------------------------------------------- issue 17
ISSUE_COUNTS = (1000000, 138949, 19306, 2682, 372, 51, 7, 1)
ISSUE_OPTIMUM = [  # class_reference at 60 digits from two starts; S PSD to 1e-57
    -0.9019723424542041, -0.5631290741018978, -0.5071495845306283, -0.5011828604062589,
    -0.5003845711594866, -0.5002757209727375, -0.05761091935861475, 0.15412324850529402,
    0.20935681548077792, 0.2151340368065258, 0.21590549036392806, 0.21601065451317814,
    -0.0670536623129646, 0.6880436836959672, 0.6937186650520888, 0.6944756451218232,
    0.6945788213470419, 0.23866141800491342, 0.7485539529366149, 0.7493110686889389,
    0.7494142635497683, 0.2948687118415861, 0.754987286068707, 0.7550904856547959,
    0.30089338070770516, 0.7558476413495198, 0.3016998778882147, 0.30180985552717937]


def issue_optimum():
    M = np.eye(8)
    M[np.triu_indices(8, 1)] = ISSUE_OPTIMUM
    return np.triu(M, 1) + np.triu(M).T


def test_issue_case_comes_out_right_and_bracketed():
    # Issue 17: the cosine between the classes of 7 and 1 samples was 1.2e-2 off while
    # certified. The solve now polishes such answers: right to far better than 1e-6, with
    # a proven bar that contains the optimum (a float64 gap proves no better than a few
    # 1e-2 there, docs/theory.md section 10.6).
    truth = issue_optimum()
    res = solve(ProblemSpec(ISSUE_COUNTS, 0.5))
    model = res.model
    assert res.success and res.unique is True
    assert_contains(res.bars, res.variable, truth)
    assert_valid_box(model, res.variable, res.bars, res.certificate.excess_gap)
    assert np.max(np.abs(res.variable - truth)) < 1e-6
    assert res.bars.half_width[6, 7] < 0.1
    assert np.max(res.bars.half_width[:5, :5]) < 1e-3


def test_polish_moves_a_flat_answer_to_the_optimum():
    # The issue's optimum with the single-sample class turned by 1e-3 inside the span of
    # the others (a flat direction of the loss): certified, with wide bars; the polish
    # brings it back to the optimum and narrows them.
    truth = issue_optimum()
    model = build_model(ProblemSpec(ISSUE_COUNTS, 0.5), "class")
    lam, V = np.linalg.eigh(truth)
    U = V[:, 1:] * np.sqrt(lam[1:])
    turn = U[0] - (U[0] @ U[7]) * U[7]
    turn /= np.linalg.norm(turn)
    U[7] = math.cos(1e-3) * U[7] + math.sin(1e-3) * turn
    X, _ = repair(model, U @ U.T)
    cert, scert = certify(model, X)
    before = bars_of(model, X, cert, scert)
    assert_contains(before, X, truth)
    out = polish(model, X)
    Y, _ = repair(model, out.B)
    cert, scert = certify(model, Y)
    after = bars_of(model, Y, cert, scert)
    assert_contains(after, Y, truth)
    assert np.max(np.abs(Y - truth)) < 1e-9 < np.max(np.abs(X - truth))
    assert after.max_half_width < before.max_half_width


@pytest.mark.slow
def test_issue_reference_recomputed():
    res = solve(ProblemSpec(ISSUE_COUNTS, 0.5))
    M, low = class_reference(ISSUE_COUNTS, 0.5, res.class_gram, dps=40)
    np.testing.assert_allclose(as_float(M), issue_optimum(), atol=1e-15)


# ---------------------------------------------------------------------- collapse
def test_collapse_delta_holds_for_a_displaced_sample():
    """A sample Gram within the sample-level gap has within-class cosines >= 1 - delta.

    Balanced classes, so the optimum is the simplex ETF and ``L*`` is exact. ``delta``
    comes from the certificates of a point a little off the optimum; one sample of the
    optimum is then turned out of its class by the angle at which the loss reaches
    ``L* + eps_s``: that Gram is within the gap, so ``1 - cos`` of the angle must be at
    most ``delta``.
    """
    k, m, tau = 3, 3, 1.0
    spec = ProblemSpec((m,) * k, tau)
    model = build_model(spec, "class")
    etf = np.full((k, k), -1.0 / (k - 1)) + k / (k - 1) * np.eye(k)
    X = (1 - 1e-4) * etf + 1e-4 * np.eye(k)
    cert, scert = certify(model, X)
    delta = bars_of(model, X, cert, scert).collapse_delta
    assert 0 < delta < 1
    lam, V = np.linalg.eigh(etf)
    U = np.hstack([V * np.sqrt(np.maximum(lam, 0)), np.zeros((k, 1))])
    labels = np.repeat(np.arange(k), m)
    optimum = sc_loss_gram(U[labels] @ U[labels].T, labels, tau)

    def rise(angle):
        H = U[labels].copy()
        H[0] = math.cos(angle) * U[0] + math.sin(angle) * np.eye(k + 1)[k]
        return sc_loss_gram(H @ H.T, labels, tau) - optimum - scert.gap

    from scipy.optimize import brentq

    angle = brentq(rise, 1e-9, math.pi / 2)
    assert 1 - math.cos(angle) <= delta
    # Not loose by more than a small factor here.
    assert delta <= 4 * (1 - math.cos(angle))


def test_collapse_delta_is_zero_without_a_gap_and_nan_without_one():
    res = solve(ProblemSpec((5, 5, 5), 0.5))
    model = res.model
    B = res.variable
    exact = cosine_bars(model.sizes, model.block_counts, 0.5, B, 1e-13,
                        sample_excess_gap=0.0)
    assert exact.collapse_delta == 0.0
    unknown = cosine_bars(model.sizes, model.block_counts, 0.5, B, 1e-13)
    assert math.isnan(unknown.collapse_delta)


# ---------------------------------------------------------------------- edges
def test_exact_optimum_and_unbounded_gap():
    model = build_model(ProblemSpec((5, 5, 5), 0.5), "class")
    etf = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    zero = cosine_bars(model.sizes, model.block_counts, 0.5, etf, 0.0)
    assert zero.max_half_width == 0.0 and np.all(zero.lower == zero.upper)
    wide = cosine_bars(model.sizes, model.block_counts, 0.5, etf, math.inf)
    assert wide.max_half_width == math.inf
    assert np.all(wide.lower[wide.cosines] == -1.0) and np.all(wide.upper == 1.0)


def test_no_class_with_two_samples_is_not_unique():
    bars = cosine_bars([1, 1, 1], [1, 1, 1], 0.5, np.eye(3), 0.0)
    assert bars.unique is False
    assert np.all(bars.half_width[bars.cosines] == math.inf)


def test_to_dict_is_json_safe():
    import json

    from scconvex.files import jsonable

    res = solve(ProblemSpec((4, 1, 1), 0.5), level="class")
    bars = bars_of(res.model, res.variable, res.certificate, res.sample_certificate)
    data = json.loads(json.dumps(jsonable(bars.to_dict()), allow_nan=False))
    assert len(data["half_width"]) == 3 and len(data["intervals"]) == 1
    assert data["half_width"][0][1] >= bars.half_width[0, 1]


# ---------------------------------------------------------------------- in the pipeline
@pytest.fixture(scope="module")
def singleton_file():
    """A certificate with bars, an interval between single-sample classes and measures."""
    res = solve(ProblemSpec((5, 4, 3, 1, 1), 0.5), level="class")
    assert res.success
    return res.to_dict()


def test_solve_writes_bars_that_verify(singleton_file):
    from scconvex.certificates.verify import verify_data

    data = singleton_file
    assert data["unique"] is True and "KKT" in data["uniqueness"]["reason"]
    bounds = data["cosine_bounds"]
    assert bounds["level"] == "class" and len(bounds["intervals"]) == 1
    p, q, lo, hi = bounds["intervals"][0]
    assert (p, q) == (3, 4) and lo < 1.0 <= hi
    assert set(data["measures"]["bounds"]) >= {"etf_distance", "cos_min_min"}
    report = verify_data(data)
    assert report.ok, report.reasons
    assert report.details["unique"] is True
    assert report.details["max_half_width"] <= bounds["max_half_width"]


@pytest.mark.parametrize("path, value", [
    (("cosine_bounds", "half_width", 0, 1), 1e-12),
    (("cosine_bounds", "max_half_width"), 1e-12),
    (("cosine_bounds", "collapse_delta"), 0.0),
    (("cosine_bounds", "intervals", 0, 2), 0.9999999),
    (("cosine_bounds", "intervals"), []),
    (("cosine_bounds", "half_width"), [[0.0]]),
    (("unique",), False),
    (("uniqueness", "unique"), False),
    (("measures", "etf_distance"), 999.0),
    (("measures", "rank"), 1),
    (("measures", "bounds", "cos_mean"), [-0.1322, -0.1322]),
    (("measures", "bounds", "etf_distance"), [1.0, 1.0]),
], ids=lambda v: str(v))
def test_forged_geometry_claims_are_rejected(singleton_file, path, value):
    from scconvex.certificates.verify import verify_data

    report = verify_data(forge(singleton_file, path, value))
    assert not report.ok, path


def test_claiming_no_bars_is_allowed_but_claiming_uniqueness_is_checked(singleton_file):
    from scconvex.certificates.verify import verify_data

    quiet = forge(forge(singleton_file, ("cosine_bounds",), None), ("unique",), None)
    quiet = forge(quiet, ("uniqueness",), None)
    quiet["measures"]["bounds"] = None
    assert verify_data(quiet).ok
    # The ReLU relaxation with two single-sample classes proves no uniqueness.
    res = solve(ProblemSpec((100, 100, 1, 1), 2.0, relaxation="dnn"))
    data = res.to_dict()
    assert data["unique"] is None and verify_data(data).ok
    data["unique"] = True
    data["uniqueness"]["unique"] = True
    assert not verify_data(data).ok


def test_schema_1_files_still_verify(singleton_file):
    # Version 1 held a quadratic-model estimate under "unique" and no bars: not read.
    from scconvex.certificates.verify import verify_data

    old = copy.deepcopy(singleton_file)
    old["schema_version"] = 1
    old["unique"] = False
    old["uniqueness"] = {"unique": False, "resolution": 14.1, "free_pairs": 0, "note": "x"}
    del old["cosine_bounds"]
    del old["measures"]["bounds"]
    assert verify_data(old).ok, verify_data(old).reasons


@pytest.mark.parametrize("spec, level", [
    (ProblemSpec((6, 5, 3, 2), 0.3, loss="negatives-only"), "class"),
    (ProblemSpec((4, 3, 3, 2), 0.5), "sample"),
    (ProblemSpec.step(10, 0.5, 10, 5, 0.5), "group"),
])
def test_bars_at_every_level_and_loss_verify(spec, level):
    from scconvex.certificates.verify import verify_data

    res = solve(spec, level=level)
    assert res.success and res.bars is not None and res.unique is True
    data = res.to_dict()
    assert verify_data(data).ok, verify_data(data).reasons
    # The bars are in the block form of the solved level; a sample-level answer has
    # those of its class Gram (k x k).
    side = res.model.dim if level == "group" else spec.k
    assert res.bars.half_width.shape == (side, side)
    assert data["cosine_bounds"]["level"] == ("group" if level == "group" else "class")


def test_report_prints_every_cosine_with_its_bar():
    from scconvex.pipeline.report import format_result

    text = format_result(solve(ProblemSpec((20, 20, 2, 2), 0.1)))
    assert "unique (proven)" in text and "+- " in text
    assert "cosines between class means (+- proven bar)" in text


def test_atlas_stores_and_rechecks_the_bars(tmp_path):
    from scconvex.studies.atlas import Atlas, verify_atlas
    from scconvex.studies.sweep import build_points, run_sweep

    path = tmp_path / "a.sqlite"
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points({"step_k": 4, "rho": 0.5, "n_min": 1, "R": "3,30",
                                "tau": "0.3"}), atlas, workers=0)
        rows = atlas.rows()
        assert all(r["unique_proof"] == 1 and r["max_bar"] > 0 for r in rows)
        assert all(json.loads(r["measures"])["bounds"] is not None for r in rows)
        assert all(res.ok for res in verify_atlas(atlas))
        key = rows[0]["key"]
        atlas.conn.execute("UPDATE solves SET max_bar = 1e-30 WHERE key = ?", (key,))
        cert = json.loads(rows[1]["certificate"])
        cert["cosine_bounds"]["max_half_width"] = 1e-30
        atlas.conn.execute("UPDATE solves SET certificate = ?, max_bar = 1e-30 WHERE key = ?",
                           (json.dumps(cert), rows[1]["key"]))
        atlas.conn.commit()
        results = {r.key: r for r in verify_atlas(atlas)}
    assert not results[key].ok and any("max_bar" in r for r in results[key].reasons)
    assert not results[rows[1]["key"]].ok


def test_plot_draws_bars_and_the_uniqueness_map(tmp_path):
    pytest.importorskip("matplotlib")
    from scconvex.studies.atlas import Atlas
    from scconvex.studies.plot import make_figure
    from scconvex.studies.sweep import build_points, run_sweep

    path = tmp_path / "a.sqlite"
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points({"step_k": 4, "rho": 0.5, "n_min": 5, "R": "10,1e6",
                                "tau": "0.1,20"}), atlas, workers=0)
        rows = atlas.rows()
        fig = make_figure(atlas, "uniqueness")
        mesh = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "max_bar"]
        assert len(mesh) == 1
        values = np.asarray(mesh[0].get_array()).ravel()
        np.testing.assert_allclose(sorted(values), sorted(
            math.log10(r["max_bar"]) for r in rows))
        # Error bars only where the proven intervals are wide enough to see (tau = 20).
        fig = make_figure(atlas, "cosines", where=[("tau", "20")])
        gids = {c.get_gid() for ax in fig.axes for c in ax.collections}
        assert any(g and g.startswith("bar|") for g in gids), gids
        fig = make_figure(atlas, "cosines", where=[("tau", "0.1")])
        gids = {c.get_gid() for ax in fig.axes for c in ax.collections}
        assert not any(g and g.startswith("bar|") for g in gids)


# ------------------------------------------------------------- schedules and claims
def test_secant_bars_are_proofs_close_to_the_settled_ones(rng):
    """The solve's schedule (one secant step) and verify's (shrink until settled) both
    give valid boxes; the secant bars are within a few percent of the settled ones, and
    the tighter of the two still contains the optimum of a perturbed answer."""
    from scconvex.certificates.bars import tighter

    counts = tuple(int(c) for c in rng.integers(2, 400, size=60))
    spec = ProblemSpec(counts, 0.1)
    model = build_model(spec, "class")
    res = solve(spec, level="class")
    fast = bars_of(model, res.variable, res.certificate, res.sample_certificate)
    slow = bars_of(model, res.variable, res.certificate, res.sample_certificate, True)
    for bars in (fast, slow):
        assert_valid_box(model, res.variable, bars, res.certificate.excess_gap)
    det = fast.determined
    ratio = fast.half_width[det] / slow.half_width[det]
    assert np.max(ratio) < 1.05 and np.median(ratio) < 1.01
    assert fast.collapse_delta == pytest.approx(slow.collapse_delta, rel=0.05)
    both = tighter(fast, slow)
    assert np.all(both.half_width <= fast.half_width)
    assert np.all(both.half_width <= slow.half_width)
    assert np.all(both.lower <= res.variable + both.half_width)


def test_claimed_bars_hold_for_a_verifier_whose_gap_is_a_little_larger():
    """A verifier elsewhere recomputes the gap a few ulps differently (BLAS, threads):
    the bars a solve claims are derived from a padded gap and still cover its proof, and
    bars derived from the unpadded gap would not."""
    import dataclasses

    from scconvex.certificates.bars import CLAIM_ATOL, CLAIM_RTOL, model_bars

    spec = ProblemSpec((40, 30, 20, 10, 5, 2), 0.1)
    res = solve(spec, level="class")
    model, X = res.model, res.variable
    cert, scert = res.certificate, res.sample_certificate
    claimed = res.bars
    noise = cert.excess_gap * CLAIM_RTOL / 2 + CLAIM_ATOL * model.dim / 2
    other = dataclasses.replace(cert, excess_gap=cert.excess_gap + noise)
    other_s = dataclasses.replace(scert, excess_gap=scert.excess_gap + noise)
    proven = model_bars(model, X, other, other_s)
    assert np.all(proven.half_width <= claimed.half_width)
    assert proven.collapse_delta <= claimed.collapse_delta
    unpadded = model_bars(model, X, cert, scert)
    assert np.any(proven.half_width > unpadded.half_width)


def test_files_with_the_settled_bars_of_earlier_versions_verify():
    """Earlier versions claimed the bars of the settled schedule; verify keeps the
    tighter proof of both schedules per entry, so such a file still verifies, and a
    claim narrower than both is still rejected."""
    import dataclasses

    from scconvex.certificates.bars import model_bars
    from scconvex.certificates.verify import verify_data

    spec = ProblemSpec(tuple(range(2, 42)), 0.1)
    res = solve(spec, level="class")
    settled = model_bars(res.model, res.variable, res.certificate, res.sample_certificate,
                         thorough=True, claim=True)
    data = dataclasses.replace(res, bars=settled).to_dict()
    report = verify_data(data)
    assert report.ok, report.reasons
    half = np.array(data["cosine_bounds"]["half_width"])
    p, q = np.unravel_index(np.argmax(half), half.shape)
    proofs = [model_bars(res.model, res.variable, res.certificate, res.sample_certificate,
                         thorough=t).half_width[p, q] for t in (False, True)]
    narrower = min(proofs) * (1 - 1e-6)
    data["cosine_bounds"]["half_width"][p][q] = narrower
    report = verify_data(data)
    assert not report.ok and "narrower than the proven" in " ".join(report.reasons)


@pytest.mark.parametrize("counts,tau", [((9, 4, 2, 1), 0.1), ((30, 5, 2, 1, 1), 3.0),
                                        ((6, 6, 4, 2), 0.02)])
def test_floor_paths_agree(rng, counts, tau):
    """The floor in exponentials (the common case), in log space (where e^(R / tau) would
    overflow) and at the centre are one formula: they agree to rounding; the low-corner
    row sums agree with the corners formed directly."""
    from scconvex.certificates import bars as bars_module

    spec = ProblemSpec(counts, tau)
    model = build_model(spec, "class")
    res = solve(spec, level="class")
    X = res.variable
    curvature = model.loss.curvature_rows(model.sizes, model.block_counts, tau)
    rows = bars_module._Rows(model.sizes, model.block_counts, tau, X, curvature, -1.0)
    log_E = model.loss.block_terms(X, model.sizes, model.block_counts, tau).log_excess
    full = bars_module._full_radius(rows)
    for R in (np.zeros_like(X), full * rng.uniform(0, 0.1, X.shape), full):
        R = np.minimum(R, R.T)
        D, low = bars_module._floor(rows, R, log_E, low_sums=True)
        D_log, low_log = bars_module._floor_logs(rows, R / tau, log_E, True)
        np.testing.assert_allclose(D, D_log, rtol=1e-10, atol=0)
        np.testing.assert_allclose(low, low_log, rtol=1e-12, atol=1e-12)
        zl, _ = rows.corners(R)
        act = rows.active
        np.testing.assert_allclose(low[act], bars_module._row_logsumexp(zl)[act],
                                   rtol=1e-12, atol=1e-12)
        if not np.any(R):
            np.testing.assert_allclose(bars_module._floor_at_centre(rows, log_E), D,
                                       rtol=1e-12, atol=0)


def test_a_bar_wider_than_the_range_of_a_cosine_is_said_to_pin_nothing(capsys):
    """Negatives-only, 500,500,50,50,5,5 at tau 0.05: some proven bars are astronomically
    wide (true, and useless); every place that prints the widest bar says so, and an
    informative answer says nothing of the kind."""
    from scconvex.cli import main

    res = solve(ProblemSpec((500, 500, 50, 50, 5, 5), 0.05, loss="negatives-only"))
    assert res.success and res.bars.max_half_width >= 2
    assert "does not pin them" in res.message
    assert main(["solve", "--counts", "500,500,50,50,5,5", "--tau", "0.05",
                 "--loss", "negatives-only"]) == 0
    assert "does not pin them" in capsys.readouterr().out
    res = solve(ProblemSpec((5, 3, 2), 0.3))
    assert res.bars.max_half_width < 1e-3 and "pin" not in res.message


@pytest.mark.parametrize("gap, sample_gap", [(-1e-12, 1e-12), (math.nan, 1e-12),
                                             (1e-12, -1.0)])
def test_a_negative_or_nan_gap_is_a_clear_error(gap, sample_gap):
    from scconvex import InvalidInputError

    etf = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    with pytest.raises(InvalidInputError, match="excess_gap must be >= 0"):
        cosine_bars([1, 1, 1], [5, 5, 5], 0.5, etf, gap, sample_excess_gap=sample_gap)
