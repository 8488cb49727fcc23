import math

import numpy as np
import pytest

from scconvex import ProblemSpec, build_model, certify, class_loss, repair, solve
from scconvex.certificates.repair import min_eigenvalue
from scconvex.problem.model import class_gram


def dense_certificate(G, labels, tau):
    """Sample-level certificate computed densely, independently of scconvex.certify."""
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    npos = same.sum(axis=1)
    logits = G / tau
    np.fill_diagonal(logits, -np.inf)
    mx = logits.max(axis=1, keepdims=True)
    P = np.exp(logits - mx)
    P /= P.sum(axis=1, keepdims=True)
    A = (P - same / np.maximum(npos, 1)[:, None]) / tau
    A[npos == 0] = 0.0
    C = 0.5 * (A + A.T)
    lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
    act = npos > 0
    value = float(np.sum(lse[act] - (np.where(same, G, 0).sum(axis=1)[act] / npos[act]) / tau))
    nu = np.sum(C * G, axis=1)
    S = C - np.diag(nu)
    lam = np.linalg.eigvalsh(S)[0]
    return value, value - float(np.sum(S * G)) + n * min(0.0, lam), lam


def random_class_gram(rng, k, d):
    U = rng.normal(size=(k, d))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return U @ U.T


@pytest.mark.parametrize("counts,tau", [((4, 3, 3, 2, 1), 0.3), ((30, 30, 5, 5, 5), 0.1),
                                        ((200, 200, 200, 20, 20, 20, 20, 1), 0.5)])
def test_structured_sample_certificate_matches_dense(rng, counts, tau):
    spec = ProblemSpec(counts, tau)
    model = build_model(spec, "class")
    M = random_class_gram(rng, spec.k, 3)
    _, scert = certify(model, M)
    lab = spec.labels
    value, lower, lam = dense_certificate(M[np.ix_(lab, lab)], lab, tau)
    assert scert.loss == pytest.approx(value, rel=1e-12)
    assert scert.lower_bound == pytest.approx(lower, rel=1e-9, abs=1e-9)
    assert scert.min_eig_slack == pytest.approx(lam, rel=1e-8, abs=1e-10)


def test_group_certificates_match_class_certificates(rng):
    spec = ProblemSpec((6, 6, 6, 3, 3, 1, 1), 0.2)
    mg = build_model(spec, "group")
    g = mg.dim
    B = rng.uniform(-0.4, 0.4, size=(g, g))
    B = 0.5 * (B + B.T)
    B, _ = repair(mg, B)
    M = class_gram(mg, B)
    for a, b in zip(certify(mg, B), certify(build_model(spec, "class"), M), strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-12)
        assert a.lower_bound == pytest.approx(b.lower_bound, rel=1e-10)


def test_certificate_proves_etf_in_balanced_case():
    k, m, tau = 4, 6, 0.3
    model = build_model(ProblemSpec((m,) * k, tau), "class")
    etf = np.full((k, k), -1 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    cls, smp = certify(model, etf)
    assert cls.rel_gap < 1e-13 and smp.rel_gap < 1e-13
    assert smp.lower_bound == pytest.approx(
        k * m * math.log((m - 1) + (k - 1) * m * math.exp(-k / ((k - 1) * tau))), rel=1e-13)


@pytest.mark.parametrize("solver", ["native", "clarabel"])
def test_wrong_geometry_gets_positive_gap_that_bounds_true_excess(solver):
    # Whatever a solver returns, its repaired point is feasible, so the ETF's certified
    # lower bound must lie below its loss, and the ETF's gap must cover the improvement.
    counts, tau = (30, 30, 2, 2), 1.0
    spec = ProblemSpec(counts, tau)
    k = len(counts)
    etf = np.full((k, k), -1 / (k - 1))
    np.fill_diagonal(etf, 1.0)
    cls, smp = certify(build_model(spec, "class"), etf)
    other = solve(spec, level="class", solver=solver)
    assert other.status in ("optimal", "uncertified"), other.message
    assert min_eigenvalue(other.model, other.variable) >= 0
    other_loss = class_loss(other.class_gram, counts, tau)  # recomputed, not claimed
    improvement = class_loss(etf, counts, tau) - other_loss  # <= loss(ETF) - optimum
    assert cls.gap >= improvement and smp.gap >= improvement
    assert cls.lower_bound <= other_loss and smp.lower_bound <= other_loss
    # And the other way round: the solver's own bound lies below the ETF's loss.
    assert other.sample_lower_bound <= class_loss(etf, counts, tau)


def test_etf_is_not_optimal_under_imbalance():
    # An independent witness that the ETF is not optimal here, in plain arithmetic from
    # MATH.md section 4: a hand-made feasible point with a clearly lower loss.
    counts, tau = (30, 30, 2, 2), 1.0
    k = len(counts)
    etf = np.full((k, k), -1 / (k - 1))
    np.fill_diagonal(etf, 1.0)

    def loss(M):
        total = 0.0
        for c in range(k):
            inner = (counts[c] - 1) + sum(counts[j] * math.exp((M[c, j] - 1) / tau)
                                          for j in range(k) if j != c)
            total += counts[c] * math.log(inner)
        return total

    # The two large classes antipodal, the two small ones antipodal in the orthogonal
    # plane: PSD of rank 2.
    M = np.array([[1, -1, 0, 0], [-1, 1, 0, 0], [0, 0, 1, -1], [0, 0, -1, 1]], float)
    assert np.linalg.eigvalsh(M)[0] >= -1e-12
    assert loss(etf) - loss(M) > 0.5
    cls, smp = certify(build_model(ProblemSpec(counts, tau), "class"), etf)
    assert cls.gap >= loss(etf) - loss(M) and smp.gap >= loss(etf) - loss(M)


def test_repair_makes_feasible(rng):
    spec = ProblemSpec((5, 5, 3, 2), 0.5)
    for level in ("class", "group", "sample"):
        model = build_model(spec, level)
        X = rng.normal(size=(model.dim, model.dim))
        Y, shift = repair(model, X)
        assert min_eigenvalue(model, Y) >= 0
        assert shift > 0
        if level != "group":
            np.testing.assert_array_equal(np.diag(Y), 1.0)
        assert np.array_equal(Y, Y.T)


@pytest.mark.parametrize("tau", [1e-4, 1e-3, 0.02])
def test_small_tau_certificate_still_separates_geometries(tau):
    # At tau = 1e-4 the excess loss underflows to 0 in float64, yet the certificate is
    # taken relative to it in log space: wrong geometries must not look optimal.
    spec = ProblemSpec((5, 3, 2), tau)
    model = build_model(spec, "class")
    etf = np.full((3, 3), -0.5)
    np.fill_diagonal(etf, 1.0)
    for wrong in (np.eye(3), etf):
        cls, smp = certify(model, wrong)
        assert cls.excess_gap > 1.0 and smp.excess_gap > 1.0
    res = solve(spec, solver="native")
    assert res.success
    assert res.certificate.excess_gap < 1e-6 and res.sample_certificate.excess_gap < 1e-6
