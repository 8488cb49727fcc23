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
from scconvex.spec import ProblemSpec
from scconvex.tightness import TightnessReport, format_table, tightness

TAU = 0.1
COUNTS = (20, 20, 2, 2)
CONST = 40 * math.log(19)  # sum n_c log(n_c - 1); minority classes contribute log 1 = 0


def _excess_ab(a, c, b, lib=np):
    """Excess loss of the symmetric geometry (a, c, b), written from MATH.md section 4."""
    e = lib.exp
    maj = 40 * lib.log(1 + (20 * e((a - 1) / TAU) + 4 * e((b - 1) / TAU)) / 19)
    mino = 4 * lib.log(1 + 2 * e((c - 1) / TAU) + 40 * e((b - 1) / TAU))
    return maj + mino


@pytest.fixture(scope="module")
def reference():
    def f(p):
        a, c = p
        return _excess_ab(a, c, -np.sqrt((1 + a) * (1 + c)) / 2)

    start = minimize(f, [-0.3, -0.2], method="Nelder-Mead",
                     options=dict(xatol=1e-12, fatol=1e-22, maxiter=5000)).x

    def fm(a, c):
        return _excess_ab(a, c, -mp.sqrt((1 + a) * (1 + c)) / 2, lib=mp)

    with mp.workdps(30):
        a, c = mp.findroot(lambda a, c: [mp.diff(lambda x: fm(x, c), a),
                                         mp.diff(lambda y: fm(a, y), c)],
                           (mp.mpf(start[0]), mp.mpf(start[1])))
        b = -mp.sqrt((1 + a) * (1 + c)) / 2
        # The loss must increase with b at the optimum, or the PSD boundary would not bind.
        assert mp.diff(lambda x: _excess_ab(a, c, x, lib=mp), b) > 0
        excess = float(fm(a, c))
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
    from scconvex.loss import class_loss

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
