"""Attacks on the cosine bars (issue 17 review): files that ``verify`` and ``atlas verify``
accepted although their geometry claims were not proven, and proof steps that the code
did not follow.

References are closed forms (the simplex ETF is the optimum of balanced counts, MATH.md
section 4), never the code under test.
"""

from __future__ import annotations

import copy
import json
import sqlite3

import numpy as np
import pytest
from conftest import forge, honest_claims, swept_atlas

from scconvex import ProblemSpec, solve
from scconvex.certificates.bars import model_bars
from scconvex.certificates.certify import certify
from scconvex.certificates.verify import verify_data
from scconvex.problem.model import build_model


@pytest.fixture(scope="module")
def balanced():
    """A genuine class-level certificate of balanced counts at tau = 0.02 (optimum: the
    simplex ETF, every cosine -1/3)."""
    res = solve(ProblemSpec((5, 5, 5, 5), 0.02), level="class")
    assert res.success, res.message
    return res.to_dict()


@pytest.fixture(scope="module")
def singletons():
    res = solve(ProblemSpec((5, 4, 3, 1, 1), 0.5), level="class")
    assert res.success, res.message
    return res.to_dict()


# ------------------------------------------------------------ a slightly infeasible centre
@pytest.mark.parametrize("tau", [0.02, 1e-5])
@pytest.mark.parametrize("delta", [1e-12, 9e-11])
def test_infeasible_geometry_within_rounding_gets_bars_that_hold(balanced, tau, delta):
    """``verify`` takes a smallest eigenvalue down to -1e-10 as rounding. The ETF pushed
    outwards, ``(1 + delta) ETF - delta I``, is infeasible by ``delta``, and its certified
    gap computes to exactly 0: the bars derived from it were 0 and claimed the optimum is
    this geometry, ``delta / 3`` away from the true -1/3. Every bar a file is accepted
    with must contain the optimum."""
    data = copy.deepcopy(balanced)
    data["spec"]["tau"] = data["tau"] = tau
    M = np.full((4, 4), -(1 + delta) / 3)
    np.fill_diagonal(M, 1.0)
    data["class_gram"] = M.tolist()
    honest_claims(data)
    report = verify_data(data)
    assert report.ok, report.reasons
    half = np.array(data["cosine_bounds"]["half_width"])
    off = ~np.eye(4, dtype=bool)
    assert np.all(np.abs(M - (-1 / 3))[off] <= half[off])
    # A file claiming the old zero bars is rejected.
    zero = forge(data, ("cosine_bounds", "half_width"), np.zeros((4, 4)).tolist())
    zero["cosine_bounds"]["max_half_width"] = 0.0
    assert not verify_data(zero).ok


def test_asymmetric_geometry_bars_are_measured_from_the_stored_numbers():
    """A stored class Gram that is not symmetric (by less than the 1e-10 verify accepts)
    shows two values for one cosine, and the bars were derived around their average.
    Counts 5,1,1 with the negatives-only loss have an exact optimum (gap 0, bars 0):
    storing -1 +- 4e-11 for the cosine -1 kept the claim "exactly this value"."""
    res = solve(ProblemSpec((5, 1, 1), 0.1, loss="negatives-only"), level="class")
    data = res.to_dict()
    M = np.array(data["class_gram"])
    assert M[0, 1] == -1.0  # the optimum: the single-sample classes opposite the class of 5
    M[0, 1] += 4e-11
    M[1, 0] -= 4e-11
    data["class_gram"] = M.tolist()
    assert data["cosine_bounds"]["half_width"][0][1] == 0.0
    assert not verify_data(data).ok
    wide = copy.deepcopy(data)
    wide["cosine_bounds"]["half_width"][0][1] = wide["cosine_bounds"]["half_width"][1][0] = 1e-10
    wide["cosine_bounds"]["max_half_width"] = 1e-10
    assert verify_data(wide).ok, verify_data(wide).reasons


def test_genuine_exact_optimum_keeps_zero_bars():
    """Rounding of a zero eigenvalue is not a violation: counts 5,1,1 with the
    negatives-only loss attain the loss's constant (gap exactly 0) at a rank-one class
    Gram whose computed eigenvalue may be -1e-16; its zero bars still verify."""
    for level in ("class", "sample"):
        res = solve(ProblemSpec((5, 1, 1), 0.1, loss="negatives-only"), level=level)
        data = res.to_dict(full_gram=True)
        assert verify_data(data).ok, verify_data(data).reasons


# ------------------------------------------------------------ downgrades and loose claims
@pytest.mark.parametrize("path, value", [
    (("cosine_bounds", "half_width", 0, 1), 0.0),
    (("cosine_bounds", "collapse_delta"), 0.0),
    (("unique",), False),
    (("measures", "bounds", "etf_distance"), [1.0, 1.0]),
], ids=lambda v: str(v))
def test_schema_1_file_cannot_carry_unchecked_bars(singletons, path, value):
    """Version 1 files had no bars; a file relabelled version 1 had its bars, its
    ``unique`` and its measure intervals shown without any check."""
    data = forge(forge(singletons, ("schema_version",), 1), path, value)
    assert not verify_data(data).ok


@pytest.mark.parametrize("path, value", [
    (("cosine_bounds", "excess_gap"), -5.0),
    (("cosine_bounds", "level"), "sample"),
    (("cosine_bounds", "lower"), [[0.0]]),
    (("cosine_bounds", "half_width", 0, 1), True),
    (("cosine_bounds", "half_width", 0, 1), "1e9"),
    (("cosine_bounds", "half_width", 0, 0), -1.0),
    (("measures", "bounds", "rank"), [2, 2]),
    (("measures", "bounds", "anything"), [0.0, 0.0]),
], ids=lambda v: str(v))
def test_unchecked_cosine_bounds_fields_are_rejected(singletons, path, value):
    assert verify_data(singletons).ok
    assert not verify_data(forge(singletons, path, value)).ok


def test_wider_claims_in_any_json_encoding_are_accepted(singletons):
    """A wider bar is still proven: infinities as jsonable writes them are fine."""
    p, q, _, _ = singletons["cosine_bounds"]["intervals"][0]
    data = forge(singletons, ("cosine_bounds", "intervals"), [[p, q, "-inf", "inf"]])
    data = forge(data, ("cosine_bounds", "collapse_delta"), "inf")
    assert verify_data(data).ok, verify_data(data).reasons


# ------------------------------------------------------------ atlas
@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    return swept_atlas(tmp_path_factory.mktemp("atlas"), step_k=4, rho=0.5, n_min=3, R="2",
                       tau="0.1", dims="2", restarts=1)


def _atlas_reasons(path, tmp_path, edit) -> list[str]:
    from scconvex.studies.atlas import Atlas, verify_atlas

    copy_path = str(tmp_path / "copy.sqlite")
    with sqlite3.connect(path) as src, sqlite3.connect(copy_path) as dst:
        src.backup(dst)
    with sqlite3.connect(copy_path) as conn:
        for rowid, cert in conn.execute("SELECT rowid, certificate FROM solves").fetchall():
            data = json.loads(cert)
            columns = edit(data)
            conn.execute("UPDATE solves SET certificate = ? WHERE rowid = ?",
                         (json.dumps(data), rowid))
            for name, value in columns.items():
                conn.execute(f"UPDATE solves SET {name} = ? WHERE rowid = ?", (value, rowid))
    conn.close()
    with Atlas(copy_path) as atlas:
        return [r for res in verify_atlas(atlas) if not res.ok for r in res.reasons]


def _narrow_bars(data: dict) -> dict:
    """Zero bars, with the measure intervals (certificate and column) made to follow
    from them, so that only a re-derivation of the bars can tell."""
    from scconvex.certificates.measures import geometry_of, summary
    from scconvex.files import jsonable
    from scconvex.studies.atlas import _claimed_intervals

    bounds = data["cosine_bounds"]
    side = len(bounds["half_width"])
    bounds["half_width"] = np.zeros((side, side)).tolist()
    bounds["max_half_width"] = 0.0
    geo = geometry_of(data)
    measures = jsonable(summary(geo, None, counts=data["spec"]["counts"], rank=data["rank"],
                                bounds=_claimed_intervals(bounds, geo)))
    data["measures"]["bounds"] = measures["bounds"]
    return {"max_bar": 0.0, "measures": json.dumps(measures)}


def test_atlas_row_relabelled_uncertified_cannot_show_forged_bars(atlas_file, tmp_path):
    """Only optimal rows are re-verified, so a row whose status was edited to
    'uncertified' showed forged bars (and uniqueness) unchecked."""
    def edit(data):
        columns = _narrow_bars(data)
        data["status"] = "uncertified"
        return {**columns, "status": "uncertified"}

    assert _atlas_reasons(atlas_file, tmp_path, lambda data: {}) == []
    assert _atlas_reasons(atlas_file, tmp_path, edit)


def test_atlas_certificate_relabelled_schema_1_cannot_show_forged_bars(atlas_file, tmp_path):
    def edit(data):
        columns = _narrow_bars(data)
        data["schema_version"] = 1
        data["unique"] = False
        data["uniqueness"]["unique"] = False
        return {**columns, "unique_proof": 0}

    assert _atlas_reasons(atlas_file, tmp_path, edit)


# ------------------------------------------------------------ proof steps
def test_collapse_box_of_a_group_answer_lets_single_class_cosines_go_below_the_average():
    """The collapse delta bounds every sample Gram within the gap, whose class Gram need
    not be symmetric: one cosine between two classes of a block can go below
    ``-1/(m - 1)``, the bound of the block *average*. Clipping the per-class box there
    made the group-level delta smaller than the class-level one for the same geometry
    and gaps (by 475x at an excess gap of 0.05); with the box over the per-class range
    both agree."""
    spec = ProblemSpec((2, 2, 2, 2), 0.5)
    group, cls = build_model(spec, "group"), build_model(spec, "class")
    a = -1.0 / 3 + 1e-2
    B = np.array([[a]])
    M = np.full((4, 4), a)
    np.fill_diagonal(M, 1.0)
    bars_g = model_bars(group, B, *certify(group, B))
    bars_c = model_bars(cls, M, *certify(cls, M))
    assert bars_g.collapse_delta == pytest.approx(bars_c.collapse_delta, rel=1e-6)


def test_bars_of_a_far_answer_at_small_tau_are_infinite_not_nan():
    """At tau = 1e-5 a far answer needs the whole-range box, where exp(R / tau) overflows
    next to an underflowed share: inf * 0 made the floors nan, and a nan bar passes every
    ``bars >= R`` validity test."""
    spec = ProblemSpec((5, 3, 2), 1e-5)
    model = build_model(spec, "class")
    rng = np.random.default_rng(0)
    U = rng.standard_normal((3, 3))
    U /= np.linalg.norm(U, axis=1)[:, None]
    P = U @ U.T
    np.fill_diagonal(P, 1.0)
    with np.errstate(all="ignore"):
        bars = model_bars(model, P, *certify(model, P))
    assert not np.any(np.isnan(bars.half_width))


# ------------------------------------------------------------ bars against a second method
def _barrier_check(counts, tau, loss, shift, seed):
    """The bars of the solve's answer moved by ``shift`` (exactly feasible: unit factor
    rows), recomputed honestly, against the barrier-path optimum of tests/barrier_reference."""
    from barrier_reference import optimum

    spec = ProblemSpec(counts, tau, loss=loss)
    res = solve(spec, level="class")
    assert res.success, res.message
    M = res.variable
    k = len(counts)
    lam, V = np.linalg.eigh(M)
    U = V * np.sqrt(np.maximum(lam, 0.0))
    U = U + shift * np.random.default_rng(seed).standard_normal(U.shape)
    U /= np.linalg.norm(U, axis=1)[:, None]
    P = U @ U.T
    np.fill_diagonal(P, 1.0)
    model = res.model
    bars = model_bars(model, P, *certify(model, P))
    theta = min(0.05, 20 * tau)
    ref, change = optimum([int(c) for c in counts], repr(float(tau)),
                          loss="sc" if loss == "sc" else "negatives-only",
                          start=((1 - theta) * M + theta * np.eye(k)).tolist(),
                          scale_at=M.tolist(), dps=45)
    ref = np.array(ref.tolist(), dtype=float)
    slack = 100 * change + 1e-15
    off = ~np.eye(k, dtype=bool)
    assert np.all((bars.lower - slack <= ref)[off]) and np.all((ref <= bars.upper + slack)[off])
    assert np.all((np.abs(P - ref) <= bars.half_width + slack)[off])
    return float(np.max(np.abs(P - ref)[off]))


@pytest.mark.parametrize("counts, tau, loss", [
    ((6, 4, 3, 2), 0.02, "sc"), ((6, 4, 3, 2), 1e-5, "sc"), ((9, 3, 1, 1), 0.5, "sc"),
    ((7, 4, 4, 2), 1e-3, "negatives-only"),
])
def test_honest_bars_of_a_moved_answer_contain_the_barrier_optimum(counts, tau, loss):
    _barrier_check(counts, tau, loss, 1e-7, 1)


@pytest.mark.slow
@pytest.mark.parametrize("counts, tau, loss", [
    ((1000000, 138949, 19306, 2682, 1), 0.5, "sc"), ((2000000, 2000000, 2, 2), 0.02, "sc"),
    ((40, 1, 1, 1, 1), 1e-5, "sc"), ((12, 9, 5, 3, 2), 50.0, "negatives-only"),
    ((5, 5, 5, 1), 1e-3, "sc"),
])
@pytest.mark.parametrize("shift", [1e-9, 1e-5, 1e-3])
def test_honest_bars_contain_the_barrier_optimum_slow(counts, tau, loss, shift):
    _barrier_check(counts, tau, loss, shift, 2)


# ------------------------------------------------ review of the faster bars (c37a076)
def _mp_floor(sizes, counts, tau, B, R, per_class=False):
    """``D_e(R)`` of docs/theory.md section 10.1, term by term in mpmath (absolute, not
    relative to the excess): each row ``p`` with ``s_p >= 2`` gives
    ``kappa / (1/pi_e + 1/q)``, ``pi_e`` with its numerator at the low corner of the box
    and every denominator at the high one, the corners clipped to ``[lowest, 1]``
    (``a_p >= -1/(m_p - 1)`` on a block's diagonal, -1 for per-class variables)."""
    import mpmath as mp

    g = len(sizes)
    with mp.workdps(30):
        t = mp.mpf(float(tau))

        def w(p, q):
            return sizes[q] * counts[q] if p != q else (sizes[p] - 1) * counts[p]

        F = [[mp.mpf(0)] * g for _ in range(g)]
        for p in range(g):
            if counts[p] < 2:
                continue
            a = mp.mpf(int(counts[p]) - 1)
            kappa = mp.mpf(int(counts[p]) * (1 if per_class else int(sizes[p]))) / t ** 2
            den = a + mp.fsum(w(p, q) * mp.exp((min(mp.mpf(B[p, q]) + mp.mpf(R[p, q]), 1) - 1)
                                               / t) for q in range(g) if w(p, q))
            for q in range(g):
                if not w(p, q):
                    continue
                lowest = mp.mpf(-1)
                if p == q and not per_class:
                    lowest = max(lowest, mp.mpf(-1) / (int(sizes[p]) - 1))
                x = max(mp.mpf(B[p, q]) - mp.mpf(R[p, q]), lowest)
                # Per class, a block's weight is shared by its m_q classes (m_p - 1 on
                # the diagonal): the share of one class.
                share = w(p, q) / (1 if not per_class else w(p, q) // int(counts[q]))
                pi = share * mp.exp((x - 1) / t) / den
                F[p][q] = kappa / (1 / pi + den / a)
        factor = 2 if per_class else 1
        return [[F[p][q] + F[q][p] if p != q else factor * F[p][p] for q in range(g)]
                for p in range(g)]


@pytest.mark.parametrize("counts, tau, level, per_class", [
    ((9, 4, 2, 1), 0.02, "class", False),
    ((1000000, 3, 1, 1, 7), 0.02, "class", False),
    ((6, 6, 4, 4, 4, 2, 1), 0.3, "group", False),
    ((6, 6, 4, 4, 4, 2, 1), 0.3, "group", True),
    ((8, 8, 8, 3, 3, 1, 1, 1), 1e-4, "group", False),
    ((8, 8, 8, 3, 3, 1, 1, 1), 1e-4, "group", True),
    ((50, 20, 5, 2, 1), 50.0, "class", False),
])
def test_floor_is_the_formula_of_the_theory_rounded_down(rng, counts, tau, level, per_class):
    """``_floor`` (in exponentials, or in log space where ``R / tau >= 700``: the whole
    range at tau = 1e-4) and ``_floor_at_centre`` against the formula of theory 10.1
    evaluated term by term in mpmath at random boxes: never above it, and below it by no
    more than a few times the stated margin (measured: about one margin)."""
    import mpmath as mp

    from scconvex.certificates import bars as bm

    spec = ProblemSpec(counts, tau)
    model = build_model(spec, level)
    X = solve(spec, level=level).variable
    curvature = model.loss.curvature_rows(model.sizes, model.block_counts, tau)
    rows = bm._Rows(model.sizes, model.block_counts, tau, X, curvature, -1.0,
                    per_class=per_class)
    log_E = model.loss.block_terms(X, model.sizes, model.block_counts, tau).log_excess
    full = bm._full_radius(rows)
    margin = rows.margin()
    boxes = [np.zeros_like(X), full, full * rng.uniform(0, 1e-3, X.shape),
             full * rng.uniform(0, 0.3, X.shape)]
    for R in boxes:
        R = np.minimum(R, R.T)
        D = bm._floor_at_centre(rows, log_E) if not np.any(R) else bm._floor(rows, R, log_E)
        ref = _mp_floor(model.sizes, model.block_counts, tau, X, R, per_class)
        with mp.workdps(30):
            E = mp.exp(mp.mpf(log_E))
            for (p, q), value in np.ndenumerate(D):
                exact = ref[p][q] / E
                if exact == 0:
                    assert value == 0
                    continue
                rel = float((mp.mpf(float(value)) - exact) / exact)
                assert rel <= 0, (p, q, rel)
                assert rel >= -4 * margin or exact < 1e-300, (p, q, rel, exact, margin)


def test_a_subnormal_share_gives_an_infinite_bar_without_a_warning():
    """At tau = 1e-4 a cosine 0.0721 below the largest of its row has a share of
    ``e^-721``, a subnormal number: ``1 / share`` overflowed in the floor at the point
    and the RuntimeWarning escaped from ``solve`` and ``verify`` (an error under
    ``-W error``; the suite turns warnings into errors). The overflow is a floor of 0
    there, a bar of inf, and the rest of the bars are unaffected."""
    from scconvex.certificates.bars import cosine_bars

    B = np.array([[1.0, 0.0, -0.0721], [0.0, 1.0, -0.03], [-0.0721, -0.03, 1.0]])
    for thorough in (False, True):
        bars = cosine_bars([1, 1, 1], [5, 5, 5], 1e-4, B, 1e-12, sample_excess_gap=1e-12,
                           thorough=thorough)
        assert not np.any(np.isnan(bars.half_width))
        assert 0 < bars.half_width[0, 1] < 1e-9
        assert np.all(bars.lower <= B) and np.all(B <= bars.upper)


def test_secant_step_keeps_the_first_box_when_the_step_fails_as_computed():
    """The secant box is kept only when its bars, as computed, pass the box condition:
    a ``bars_at`` whose bars at the step exceed the radii (the rows' coupling, which the
    chord does not see) leaves the first box."""
    from scconvex.certificates import bars as bm

    full = np.full((2, 2), 2.0)
    det = ~np.eye(2, dtype=bool)
    b0 = np.where(det, 1e-3, np.inf)
    R1 = np.where(det, 4e-3, full)
    b1 = np.where(det, 2e-3, np.inf)
    target = 1e-3 / (1 / bm.SHRINK - (2e-3 - 1e-3) / 4e-3)
    calls = []

    def coupled(R):
        calls.append(R.copy())
        return np.where(det, 1.5 * target, np.inf)  # fails bars < R at R = target

    assert bm._secant_target(b0, b1, R1)[0, 1] == pytest.approx(target)
    bars, R = bm._secant_step(coupled, bm._secant_target(b0, b1, R1), b1, R1, full, det)
    assert len(calls) == 1 and calls[0][0, 1] == pytest.approx(target)
    assert bars is b1 and R is R1

    def chord(R):
        return np.where(det, 0.9 * R, np.inf)

    bars, R = bm._secant_step(chord, bm._secant_target(b0, b1, R1), b1, R1, full, det)
    assert R[0, 1] == pytest.approx(target) and np.all(bars[det] < R[det])


@pytest.mark.parametrize("counts, tau, shift", [
    ((9, 4, 2, 1), 0.02, 0.0), ((9, 4, 2, 1), 0.02, 1e-3), ((5, 3, 2, 1, 1, 1), 1e-4, 1e-2),
    ((1000000, 1, 1, 7), 0.5, 1e-4), ((30, 5, 2), 50.0, 1e-3), ((5, 5, 5, 5), 0.02, 1e-6),
])
def test_fast_schedule_boxes_are_valid_as_computed(rng, counts, tau, shift, monkeypatch):
    """The solve's schedule at class level: its first box must be valid for the collapse
    gap ``eps_c + eps_s`` (the collapse delta reads its low corner), and the returned
    pair (bars, radius) for ``eps_c``: both re-derived from the floor at those radii
    (checked against the theory's formula above)."""
    from scconvex.certificates import bars as bm
    from scconvex.certificates.repair import repair

    spec = ProblemSpec(counts, tau)
    model = build_model(spec, "class")
    X = solve(spec, level="class").variable
    if shift:
        P = rng.standard_normal(X.shape)
        X, _ = repair(model, X + shift * (P + P.T))
    cert, scert = certify(model, X)
    exg, exg_s = cert.excess_gap, scert.excess_gap
    seen = {}
    original = bm._secant_step

    def spy(bars_at, target, b1, R1, full, det):
        seen["R1"] = R1.copy()
        return original(bars_at, target, b1, R1, full, det)

    monkeypatch.setattr(bm, "_secant_step", spy)
    first = {}
    original_floor = bm._floor

    def floor_spy(rows, R, log_E, low_sums=False):
        out = original_floor(rows, R, log_E, low_sums)
        if low_sums:
            first[R.tobytes()] = out[1]
        return out

    monkeypatch.setattr(bm, "_floor", floor_spy)
    log_E = model.loss.block_terms(X, model.sizes, model.block_counts, tau).log_excess
    bars = bm.cosine_bars(model.sizes, model.block_counts, tau, X, exg,
                          sample_excess_gap=exg_s, log_excess=log_E)
    monkeypatch.setattr(bm, "_floor", original_floor)
    curvature = model.loss.curvature_rows(model.sizes, model.block_counts, tau)
    rows = bm._Rows(model.sizes, model.block_counts, tau, X, curvature, -1.0)
    full = bm._full_radius(rows)
    det = bars.determined
    R1 = seen["R1"]
    D1 = bm._floor(rows, R1, log_E)
    with np.errstate(divide="ignore"):
        big = np.sqrt(2 * (exg + exg_s) / D1)
    assert np.all(((big < R1) | (R1 >= full))[det])
    # The collapse delta's row sums are those of that box's low corner, or -inf where
    # they underflow relative to the row's largest term (then sigma^- = 0, a delta of 2;
    # measured: such rows give a delta of 2 from the exact sums too).
    low = first[R1.tobytes()][rows.active]
    zl, _ = rows.corners(R1)
    exact = bm._row_logsumexp(zl)[rows.active]
    assert np.all(low <= exact + 1e-12 * (1 + np.abs(exact)))
    fin = np.isfinite(low)
    np.testing.assert_allclose(low[fin], exact[fin], rtol=1e-12, atol=1e-12)
    R = np.where(det, bars.radius, full)
    with np.errstate(divide="ignore"):
        need = np.sqrt(2 * exg / bm._floor(rows, R, log_E))
    assert np.all(((bars.half_width < R) | (R >= full))[det])
    assert np.all((bars.half_width >= need)[det])


CLAIM_CASES = [
    ("class", (5, 5, 5, 5), 0.02, "sc"), ("class", (9, 4, 2, 1, 1, 1), 0.02, "sc"),
    ("class", (9, 4, 2, 1), 1e-4, "sc"), ("group", (1000000, 1000000, 1, 1, 1, 7, 7), 0.02, "sc"),
    ("group", (40, 40, 12, 12, 12, 3, 3, 1, 1, 1), 1e-3, "sc"),
    ("class", (30, 5, 2, 1), 50.0, "sc"), ("class", (7, 3, 2, 1, 1), 0.02, "negatives-only"),
    ("group", (6, 6, 4, 4, 2, 1, 1), 5.0, "sc"),
]


@pytest.mark.parametrize("level, counts, tau, loss", CLAIM_CASES)
def test_claimed_bars_are_proven_by_a_verifier_whose_gap_differs_a_little(rng, level, counts,
                                                                          tau, loss):
    """A file's bars come from the padded gap (``claim_gap``) and one schedule; a verifier
    elsewhere recomputes a gap that differs in the last bits and keeps the tighter of
    both schedules. Whatever boxes its schedules pick for that gap, it must prove every
    claim (bars, intervals of single-sample cosines, collapse delta, uniqueness): at the
    solve's answer and at answers moved off it, with the gap moved by +-3e-7 of itself
    plus up to half the absolute allowance (the largest differences measured across
    thread counts were 3e-7 of the gap and 8e-16 of the excess)."""
    import dataclasses

    from scconvex.certificates.bars import CLAIM_ATOL, check_claims, tighter
    from scconvex.certificates.repair import repair
    from scconvex.files import jsonable

    spec = ProblemSpec(counts, tau, loss=loss)
    res = solve(spec, level=level)
    assert res.success, res.message
    model = res.model
    for shift in (0.0, 1e-3):
        X = res.variable
        if shift:
            P = rng.standard_normal(X.shape)
            X, _ = repair(model, X + shift * (P + P.T))
        cert, scert = certify(model, X)
        claim = model_bars(model, X, cert, scert, claim=True)
        claimed = json.loads(json.dumps(jsonable(claim.to_dict())))
        for u in (-3e-7, 0.0, 3e-7):
            noise = CLAIM_ATOL * model.dim * rng.uniform(-0.5, 0.5, size=2)
            # A recomputed gap is never negative (certify clips it at 0).
            gaps = np.maximum([cert.excess_gap * (1 + u) + noise[0],
                               scert.excess_gap * (1 + u) + noise[1]], 0.0)
            other = dataclasses.replace(cert, excess_gap=float(gaps[0]))
            other_s = dataclasses.replace(scert, excess_gap=float(gaps[1]))
            proof = tighter(model_bars(model, X, other, other_s),
                            model_bars(model, X, other, other_s, thorough=True))
            assert check_claims(claimed, proof, claim.unique) == [], (shift, u)


@pytest.mark.slow
@pytest.mark.parametrize("tau, level", [(0.02, "class"), (1e-3, "group")])
def test_files_verify_across_blas_thread_counts(tau, level):
    """A file written by a solve with 2 BLAS threads verifies with 1, and vice versa
    (``eigh`` and the products of a 300-class certificate differ in the last bits between
    thread counts; measured differences of the gap: up to 2.5e-7 of it)."""
    from scconvex.threads import blas_threads

    rng = np.random.default_rng(5)
    counts = tuple(int(c) for c in np.concatenate([rng.integers(2, 2000, size=280),
                                                   np.ones(20, dtype=int)]))
    spec = ProblemSpec(counts, tau)
    for write, check in ((2, 1), (1, 2)):
        res = solve(spec, level=level, threads=write)
        assert res.success, res.message
        data = json.loads(json.dumps(res.to_dict()))
        with blas_threads(check):
            report = verify_data(data)
        assert report.ok, report.reasons
