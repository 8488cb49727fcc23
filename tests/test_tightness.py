"""Tests of the tightness report and the landscape evidence (scconvex.tightness).

The reference optimum of the imbalanced instance (counts 20, 20, 2, 2; tau 0.1) comes from
an independent reduction written out here: by exchangeability the relaxed optimum has one
cosine ``a`` between the two majority classes, ``c`` between the two minority classes and
``b`` across (MATH.md section 4, group level). PSD-ness is ``(1 + a)(1 + c) >= 4 b^2``; the
loss decreases with ``b``, so ``b = -sqrt((1 + a)(1 + c)) / 2`` and the optimum solves a
2-variable problem, polished with mpmath.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import mpmath as mp
import numpy as np
import pytest
from scipy.optimize import minimize

from scconvex.errors import InvalidInputError, SolveFailedError
from scconvex.features.tightness import TightnessReport, format_table, tightness
from scconvex.problem.spec import ProblemSpec

TAU = 0.1
COUNTS = (20, 20, 2, 2)
CONST = 40 * math.log(19)  # sum n_c log(n_c - 1); minority classes contribute log 1 = 0


def _excess_ab(a, c, b, lib=np, tau=TAU):
    """Excess loss of the symmetric geometry (a, c, b), written from MATH.md section 4."""
    e = lib.exp
    maj = 40 * lib.log1p((20 * e((a - 1) / tau) + 4 * e((b - 1) / tau)) / 19)
    mino = 4 * lib.log1p(2 * e((c - 1) / tau) + 40 * e((b - 1) / tau))
    return maj + mino


@pytest.fixture(scope="module")
def reference():
    return _reference(TAU)


def _reference(tau):
    """Relaxed optimum of COUNTS at ``tau`` from the (a, c, b) reduction, in mpmath."""
    # Minimise the log of the excess: O(1) values and O(1/tau) slopes at any tau.
    def f(p):
        a, c = p
        return np.log(_excess_ab(a, c, -np.sqrt((1 + a) * (1 + c)) / 2, tau=tau))

    start = minimize(f, [-0.3, -0.2], method="Nelder-Mead",
                     options=dict(xatol=1e-12, fatol=1e-22, maxiter=5000)).x

    def fm(a, c):
        return mp.log(_excess_ab(a, c, -mp.sqrt((1 + a) * (1 + c)) / 2, lib=mp,
                                 tau=mp.mpf(tau)))

    with mp.workdps(30):
        a, c = mp.findroot(lambda a, c: [mp.diff(lambda x: fm(x, c), a),
                                         mp.diff(lambda y: fm(a, y), c)],
                           (mp.mpf(start[0]), mp.mpf(start[1])))
        b = -mp.sqrt((1 + a) * (1 + c)) / 2
        # The loss must increase with b at the optimum, or the PSD boundary would not bind.
        assert mp.diff(lambda x: _excess_ab(a, c, x, lib=mp, tau=mp.mpf(tau)), b) > 0
        excess = float(mp.exp(fm(a, c)))
        a, b, c = float(a), float(b), float(c)
    M = np.array([[1, a, b, b], [a, 1, b, b], [b, b, 1, c], [b, b, c, 1]])
    return SimpleNamespace(loss=CONST + excess, excess_loss=excess, class_gram=M, rank=3,
                           status="reference")


@pytest.fixture(scope="module")
def d2_optimum():
    """Best class-level loss in d = 2 by grid search over angles plus local polish."""
    grid = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    t1, t2, t3 = np.meshgrid(grid, grid, grid, indexing="ij")
    th = np.stack([np.zeros_like(t1), t1, t2, t3], axis=-1).reshape(-1, 4)

    def excess(theta):
        cos = np.cos(theta[..., :, None] - theta[..., None, :])
        n = np.array(COUNTS, dtype=float)
        w = np.exp((cos - 1) / TAU) * n
        w[..., np.arange(4), np.arange(4)] = 0.0
        return np.sum(n * np.log1p(w.sum(axis=-1) / (n - 1)), axis=-1)

    vals = excess(th)
    best = np.inf
    for i in np.argsort(vals)[:8]:
        res = minimize(lambda p: excess(np.r_[0.0, p]), th[i, 1:], method="BFGS",
                       options=dict(gtol=1e-13))
        best = min(best, res.fun)
    return CONST + best


# ---------------------------------------------------------------------- landscape
def test_reference_is_consistent(reference):
    from scconvex.losses.sc import class_loss

    M = reference.class_gram
    assert np.linalg.eigvalsh(M)[0] > -1e-12
    assert class_loss(M, COUNTS, TAU, excess=True) == pytest.approx(reference.excess_loss,
                                                                    rel=1e-12)


def test_landscape_at_and_above_rank(reference):
    spec = ProblemSpec(COUNTS, TAU)
    rep = tightness(spec, [3, 4, 5], restarts=10, seed=0, rtol=1e-7, relaxed=reference)
    for row in rep.rows:
        assert row.tight and row.reached == row.restarts == 10
        assert row.gram_distance <= 1e-5
        assert abs(row.excess_gap) <= 1e-7


def test_landscape_below_rank_is_strictly_above(reference, d2_optimum):
    spec = ProblemSpec(COUNTS, TAU)
    rep = tightness(spec, [2], restarts=10, seed=0, relaxed=reference)
    row = rep.rows[0]
    assert not row.tight and row.reached == 0
    # Strictly above the relaxation, by far more than any tolerance in play ...
    assert row.best_loss - reference.loss > 1e-3
    assert row.rel_gap > 1e-5
    # ... and at the best d = 2 value found independently.
    assert row.best_loss == pytest.approx(d2_optimum, rel=1e-12)


def test_balanced_etf_landscape():
    k, m, tau = 4, 6, 0.3
    etf = np.full((k, k), -1 / (k - 1)) + (1 + 1 / (k - 1)) * np.eye(k)
    loss = k * m * math.log((m - 1) + (k * m - m) * math.exp(-k / ((k - 1) * tau)))
    ref = SimpleNamespace(loss=loss, class_gram=etf, rank=k - 1, status="closed form")
    rep = tightness(ProblemSpec((m,) * k, tau), [2, 3, 4], restarts=6, seed=5, rtol=1e-7,
                    relaxed=ref)
    two, three, four = rep.rows
    assert not two.tight and two.reached == 0
    for row in (three, four):
        assert row.tight and row.reached == 6 and row.gram_distance <= 1e-5


# ---------------------------------------------------------------------- done-when
def test_done_when_class_level():
    rep = tightness(ProblemSpec(COUNTS, TAU), [2, 3, 4, 5], restarts=10)
    assert rep.rank == 3
    tight = {r.d: r.tight for r in rep.rows}
    assert tight == {2: False, 3: True, 4: True, 5: True}
    for r in rep.rows[1:]:
        assert r.reached == r.restarts == 10


def test_done_when_sample_level(reference):
    rep = tightness(ProblemSpec(COUNTS, TAU), [2, 3, 4, 5], restarts=10, level="sample",
                    relaxed=reference)
    assert [r.tight for r in rep.rows] == [False, True, True, True]
    for r in rep.rows[1:]:
        assert r.reached == r.restarts == 10
        assert r.gram_distance <= 1e-5
    for r in rep.rows:
        assert r.within_class_spread <= 1e-4
    assert rep.seconds < 60


# ---------------------------------------------------------------------- report format
def test_to_dict_shape_and_json(reference):
    calls = []
    rep = tightness(ProblemSpec(COUNTS, TAU), [2, 3], restarts=2, relaxed=reference,
                    progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert isinstance(rep, TightnessReport)
    d = rep.to_dict()
    assert {"relaxed_loss", "rank", "rows"} <= set(d)
    assert d["relaxed_loss"] == reference.loss and d["rank"] == 3
    required = {"d", "best_loss", "rel_gap", "tight", "reached", "restarts", "gram_distance"}
    for row in d["rows"]:
        assert required <= set(row)
        assert isinstance(row["tight"], bool) and isinstance(row["reached"], int)
    assert [row["d"] for row in d["rows"]] == [2, 3]
    text = json.dumps(d, sort_keys=True, allow_nan=False)
    assert json.loads(text) == d
    with pytest.raises(AttributeError):
        rep.rank = 4


def test_format_table(reference):
    rep = tightness(ProblemSpec(COUNTS, TAU), [2, 3], restarts=2, level="sample",
                    relaxed=reference)
    text = format_table(rep)
    lines = text.splitlines()
    assert "rank 3" in text and "1e-06" in text
    row2 = next(line for line in lines if line.split()[:1] == ["2"])
    row3 = next(line for line in lines if line.split()[:1] == ["3"])
    assert " no " in row2 and "0/2" in row2
    assert " yes " in row3 and "2/2" in row3
    assert not text.endswith("\n")


def test_seed_per_dimension_is_stable(reference):
    spec = ProblemSpec(COUNTS, TAU)
    a = tightness(spec, [2, 3], restarts=2, seed=3, relaxed=reference)
    b = tightness(spec, [3], restarts=2, seed=3, relaxed=reference)
    assert a.rows[1].best_loss == b.rows[0].best_loss


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs", [dict(dims=[]), dict(dims=[0, 2]), dict(dims=[2.5]),
                                    dict(dims="ab"), dict(restarts=0), dict(level="group"),
                                    dict(seed=-1), dict(seed=1.5), dict(rtol=-1.0),
                                    dict(excess_rtol=math.nan), dict(excess_rtol="x"),
                                    dict(progress="x")])
def test_invalid_input(kwargs, reference):
    args = dict(dims=[2], restarts=1, relaxed=reference)
    args.update(kwargs)
    with pytest.raises(InvalidInputError):
        tightness(ProblemSpec(COUNTS, TAU), **args)


def test_failed_relaxation_raises():
    bad = SimpleNamespace(loss=math.nan, class_gram=None, rank=0, status="failed",
                          message="solver crashed")
    with pytest.raises(SolveFailedError, match="no point"):
        tightness(ProblemSpec(COUNTS, TAU), [2], restarts=1, relaxed=bad)


def test_mismatched_relaxed_gram(reference):
    bad = SimpleNamespace(loss=reference.loss, class_gram=np.eye(3), rank=3, status="x")
    with pytest.raises(InvalidInputError):
        tightness(ProblemSpec(COUNTS, TAU), [2], restarts=1, relaxed=bad)


# ---------------------------------------------------------------------- small tau (issue 8)
def test_d2_not_tight_at_small_tau():
    """20, 20, 2, 2 at tau = 0.02: d = 2 is not tight, although the loss-relative gap is 0.

    Independent argument: every class has a positive, so the loss is strictly convex in the
    off-diagonal cosines (each anchor term is a log-sum-exp with a constant argument,
    ``log(n_c - 1)``), and the relaxed optimum is unique; by symmetry it is the (a, c, b)
    point of the mpmath reduction, which has rank 3 (``1 - a``, ``1 - c`` > 0 and the 2 x 2
    block on the PSD boundary). No configuration in d = 2 attains it.
    """
    tau = 0.02
    ref = _reference(tau)
    eig = np.linalg.eigvalsh(ref.class_gram)
    assert abs(eig[0]) < 1e-12 and eig[1] > 1e-3  # rank exactly 3
    rep = tightness(ProblemSpec(COUNTS, tau), [2], restarts=5, seed=0)
    assert rep.relaxed_excess == pytest.approx(ref.excess_loss, rel=1e-6)
    row = rep.rows[0]
    assert row.rel_gap <= 1e-6  # the loss-relative gap alone cannot see it ...
    assert row.excess_gap > 1.0  # ... the excess-relative gap can
    assert not row.tight and row.reached == 0
    assert "excess-relative gap" in format_table(rep)


def _singletons_reference(tau):
    """Relaxed optimum of 10, 10, 1, 1, 1 in mpmath, and a d = 2 point that attains it.

    Swapping the two large classes and permuting the singletons maps feasible points to
    feasible points with the same loss, so (convexity) some optimum has cosine ``b`` between
    the large classes and ``c`` from each to every singleton. Singleton-singleton cosines
    do not enter the loss; setting them to 1 keeps the class Gram PSD, which then reduces
    to ``[[1, b, c], [b, 1, c], [c, c, 1]]``: ``2 c^2 <= 1 + b``. The loss increases with
    ``c``, so ``c = -sqrt((1 + b) / 2)``: two large classes at angles +-theta and all
    singletons at pi, a planar configuration. The relaxation is tight in d = 2.
    """
    tau = mp.mpf(tau)

    def log_excess(b):
        c = -mp.sqrt((1 + b) / 2)
        return mp.log(20 * mp.log1p((10 * mp.exp((b - 1) / tau)
                                     + 3 * mp.exp((c - 1) / tau)) / 9))

    with mp.workdps(30):
        grid = [mp.mpf(x) / 100 for x in range(-99, 100)]
        start = min(grid, key=log_excess)
        b = mp.findroot(lambda x: mp.diff(log_excess, x), start)
        return float(mp.exp(log_excess(b))), float(b)


def test_singletons_d2_tight_at_tau_001():
    """10, 10, 1, 1, 1 at tau = 0.01: d = 2 *is* tight (see ``_singletons_reference``)."""
    spec = ProblemSpec((10, 10, 1, 1, 1), 0.01)
    excess, b = _singletons_reference(spec.tau)
    assert -1 < b < 1
    rep = tightness(spec, [2], restarts=5, seed=0)
    assert rep.relaxed_excess == pytest.approx(excess, rel=1e-6)
    row = rep.rows[0]
    # The verdict agrees with the independent reference, whatever the restarts found ...
    assert row.tight == (row.best_excess <= excess * (1 + 1e-3))
    # ... and some restart finds the planar optimum.
    assert row.tight and row.reached >= 1
    assert row.best_excess == pytest.approx(excess, rel=1e-6)


def test_uncertified_relaxation_makes_nothing_tight():
    # A starved solve (one iteration) does not certify this instance: its certified lower
    # bound says nothing about the excess, so no dimension can be judged tight against
    # it, whatever the non-convex runs find. (Group level used to fail here by itself,
    # before classes of one sample got blocks of their own.)
    from scconvex import solve

    spec = ProblemSpec((10, 10, 1, 1, 1), 0.01)
    relaxed = solve(spec, level="group", solver="native", options={"max_iter": 1})
    assert relaxed.status == "uncertified"
    rep = tightness(spec, [2], restarts=2, seed=0, relaxed=relaxed)
    assert rep.excess_lower_bound == 0.0
    assert all(not r.tight and r.reached == 0 for r in rep.rows)


def test_rtol_options(reference):
    spec = ProblemSpec(COUNTS, TAU)
    # d = 2 is off by a rel_gap above 1e-5 (test_landscape_below_rank_is_strictly_above):
    # each tolerance alone decides it.
    loose = tightness(spec, [2], restarts=2, relaxed=reference, rtol=1.0, excess_rtol=1e9)
    assert loose.rows[0].tight and loose.rows[0].reached == 2
    assert not tightness(spec, [2], restarts=2, relaxed=reference, rtol=1.0).rows[0].tight
    assert not tightness(spec, [2], restarts=2, relaxed=reference,
                         excess_rtol=1e9).rows[0].tight
    d = loose.to_dict()
    assert d["excess_rtol"] == 1e9 and "excess_lower_bound" in d["rule"]


def test_sample_level_verdict_counts_rounding_against_tightness():
    # At tau = 0.05 the sample-level excess (a difference of two sums of about 118) is known
    # only to a few 1e-12, close to 1 % of the optimal excess 5e-10: a restart that lands
    # on the optimum cannot be told apart from one 1 % above it, so it is not called tight.
    spec = ProblemSpec(COUNTS, 0.05)
    rep = tightness(spec, [3], restarts=2, level="sample", seed=0)
    assert rep.excess_resolution > rep.excess_rtol * rep.excess_lower_bound
    row = rep.rows[0]
    assert abs(row.excess_gap) < 1e-3  # the estimate alone would have passed
    assert not row.tight and row.reached == 0
    assert "known only to" in format_table(rep)


def test_underflowing_excess_says_not_shown_rather_than_not_tight():
    """At tau = 1e-4 the excess underflows float64 (about exp(-1/tau)): the relaxation is
    tight at d = 2 for rank 2, but nothing can be shown; the table must say so."""
    rep = tightness(ProblemSpec((6, 4, 2), 1e-4), dims=[2], restarts=1)
    assert rep.excess_lower_bound == 0.0 and not rep.rows[0].tight
    assert "'no' here means 'not shown'" in format_table(rep)


@pytest.mark.parametrize("level", ["class", "sample"])
def test_rows_keep_the_best_features(reference, level):
    spec = ProblemSpec(COUNTS, TAU)
    rep = tightness(spec, [2, 3], restarts=2, level=level, relaxed=reference)
    rows = spec.k if level == "class" else spec.n
    for r in rep.rows:
        assert r.features.shape == (rows, r.d)
        np.testing.assert_allclose(np.linalg.norm(r.features, axis=1), 1.0, atol=1e-12)
        assert "features" not in r.to_dict()
        # Class loss of the features' class means, from MATH.md section 4 term by term
        # (at sample level the best point is collapsed, so its class means are unit).
        labels = spec.labels if level == "sample" else np.arange(spec.k)
        U = np.array([r.features[labels == c].mean(axis=0) for c in range(spec.k)])
        U /= np.linalg.norm(U, axis=1)[:, None]
        M = U @ U.T
        by_hand = sum(n_c * math.log((n_c - 1) + sum(
            spec.counts[o] * math.exp((M[c, o] - 1) / TAU) for o in range(spec.k) if o != c))
            for c, n_c in enumerate(spec.counts))
        assert r.best_loss == pytest.approx(by_hand, rel=1e-7)
