"""Block certificates at counts near 2**53: the eigenvalue's rounding times ``N``.

The gap adds ``-N lambda_min(S)`` with ``N = n`` over sample Grams; with ``n`` near
``2**53`` the float64 error of ``lambda_min`` (about ``eps`` times the entries of ``S``)
becomes comparable to the excess loss. Before the allowance the sample-level certificate
of a point whose excess is 2e-3 above the optimum's (mpmath, below) read 4e-19.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from scconvex import ProblemSpec, solve
from scconvex.certificates.certify import certify
from scconvex.problem.model import build_model


def _excess(M, counts, tau) -> mp.mpf:
    """``L - sum n_c log(n_c - 1)`` of a class Gram (MATH.md section 4), 50 digits."""
    with mp.workdps(50):
        total = mp.mpf(0)
        for c, nc in enumerate(counts):
            if nc >= 2:
                s = mp.fsum(counts[j] * mp.exp((mp.mpf(M[c][j]) - 1) / tau)
                            for j in range(len(counts)) if j != c)
                total += nc * mp.log1p(s / (nc - 1))
        return total


@pytest.mark.parametrize("counts", [(1, 3, 2, 2**52), (1, 3, 2, 10**15)])
def test_sample_certificate_bounds_the_true_excess_gap_at_huge_counts(counts):
    tau = 1.0
    spec = ProblemSpec(counts, tau)
    reference = solve(spec, level="class").class_gram  # any feasible point bounds the optimum
    model = build_model(spec, "class")
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(40):
        A = rng.normal(size=(4, 4))
        H = A / np.linalg.norm(A, axis=1, keepdims=True)
        t = 10 ** rng.uniform(-4, -1)
        X = (1 - t) * reference + t * (H @ H.T)
        E = _excess(X.tolist(), counts, tau)
        true_gap = float((E - _excess(reference.tolist(), counts, tau)) / E)
        for cert in certify(model, X):
            # A certified gap must be at least the excess above a known feasible point.
            assert cert.excess_gap >= true_gap * (1 - 1e-9), (cert.level, t, true_gap, cert)
            worst = max(worst, true_gap)
    assert worst > 1e-3  # the test reached points the tolerance must reject


def test_ordinary_counts_keep_tight_certificates():
    res = solve(ProblemSpec((1000, 1000, 10, 10, 10), 0.1))
    assert res.success, res.message
    assert res.sample_certificate.excess_gap < 1e-9
