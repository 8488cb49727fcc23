"""Exact reductions: the group, class and sample programs have the same optimum."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_certify import dense_certificate

from scconvex import ProblemSpec, build_model, certify, repair, solve


def random_repeated_counts(rng):
    distinct = rng.choice(np.arange(1, 7), size=rng.integers(2, 4), replace=False)
    reps = rng.integers(1, 3, size=len(distinct))
    reps[0] = 2  # at least one repeated count
    counts = np.repeat(distinct, reps)
    if counts.max() < 2:
        counts[0] = 2
    return tuple(int(c) for c in rng.permutation(counts))


@pytest.mark.parametrize("trial", range(3))
def test_group_class_sample_agree(rng, trial):
    for _ in range(trial + 1):
        counts = random_repeated_counts(rng)
    tau = float(rng.choice([0.2, 0.5, 1.0]))
    spec = ProblemSpec(counts, tau)
    res = {lev: solve(spec, level=lev, solver="clarabel") for lev in ("group", "class",
                                                                      "sample")}
    for r in res.values():
        assert r.success, (counts, tau, r.message)
    ref = res["class"].loss
    for r in res.values():
        assert r.loss == pytest.approx(ref, rel=1e-6)
        # Certified bounds from one level bracket the values found at the others.
        assert all(r.sample_lower_bound <= o.loss + 1e-9 for o in res.values())
    np.testing.assert_allclose(res["group"].class_gram, res["class"].class_gram, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(1, 6), min_size=2, max_size=6).filter(
           lambda c: max(c) >= 2),
       tau=st.sampled_from([0.05, 0.3, 1.0, 4.0]),
       seed=st.integers(0, 2**31 - 1))
def test_structured_certificates_match_dense_on_random_geometries(counts, tau, seed):
    rng = np.random.default_rng(seed)
    spec = ProblemSpec(counts, tau)
    for level in ("group", "class"):
        model = build_model(spec, level)
        X, _ = repair(model, rng.uniform(-1, 1, size=(model.dim, model.dim)))
        cls, smp = certify(model, X)
        assert cls.gap >= 0 and smp.gap >= 0
        assert cls.lower_bound <= cls.loss and smp.lower_bound <= smp.loss
        M = X[np.ix_(model.block_of, model.block_of)]
        np.fill_diagonal(M, 1.0)
        lab = spec.labels
        value, lower, _ = dense_certificate(M[np.ix_(lab, lab)], lab, tau)
        assert smp.loss == pytest.approx(value, rel=1e-11)
        assert smp.lower_bound == pytest.approx(lower, rel=1e-8, abs=1e-8)


@pytest.mark.slow
def test_structured_certificate_matches_dense_at_n_2000(rng):
    spec = ProblemSpec.step(8, 0.5, 10, 45, tau=0.1)  # 4 x 450 + 4 x 45 = 1980 samples
    model = build_model(spec, "group")
    X, _ = repair(model, rng.uniform(-0.5, 0.5, size=(2, 2)))
    _, smp = certify(model, X)
    M = X[np.ix_(model.block_of, model.block_of)]
    np.fill_diagonal(M, 1.0)
    lab = spec.labels
    value, lower, lam = dense_certificate(M[np.ix_(lab, lab)], lab, spec.tau)
    assert smp.loss == pytest.approx(value, rel=1e-11)
    assert smp.lower_bound == pytest.approx(lower, rel=1e-8)
    assert smp.min_eig_slack == pytest.approx(lam, rel=1e-6, abs=1e-9)
