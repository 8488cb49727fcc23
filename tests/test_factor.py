"""Tests of the factorization of relaxed optima (scconvex.factor)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from scconvex.errors import InvalidInputError
from scconvex.features.align import gram_distance
from scconvex.features.factor import Factorization, TruncationWarning, factor, numerical_rank
from scconvex.problem.spec import ProblemSpec


def etf(k: int) -> np.ndarray:
    return np.full((k, k), -1.0 / (k - 1)) + (1.0 + 1.0 / (k - 1)) * np.eye(k)


def unit_rows(rng, m: int, r: int) -> np.ndarray:
    X = rng.standard_normal((m, r))
    return X / np.linalg.norm(X, axis=1)[:, None]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_etf_factor_is_exact(k):
    f = factor(etf(k))
    assert isinstance(f, Factorization)
    assert f.rank == k - 1 and f.d == k - 1 and f.exact
    assert f.features.shape == (k, k - 1)
    np.testing.assert_allclose(np.linalg.norm(f.features, axis=1), 1.0, atol=1e-14)
    assert f.residual <= 1e-13
    np.testing.assert_allclose(f.gram, etf(k), atol=1e-13)
    assert "exact" in f.message


def test_random_low_rank_gram(rng):
    # The reference Gram comes from known rank-3 unit vectors.
    X = unit_rows(rng, 7, 3)
    G = X @ X.T
    f = factor(G)
    assert f.rank == 3 and f.exact and f.residual <= 1e-12
    assert gram_distance(f.features, X) <= 1e-12
    np.testing.assert_allclose(f.eigenvalues, np.sort(np.linalg.eigvalsh(G))[::-1], atol=1e-13)


def test_larger_d_pads_and_stays_exact(rng):
    X = unit_rows(rng, 5, 2)
    f = factor(X @ X.T, d=8)
    assert f.features.shape == (5, 8) and f.exact and f.residual <= 1e-12
    np.testing.assert_array_equal(f.features[:, 5:], 0.0)


def test_truncation_warns_and_flags(rng):
    X = unit_rows(rng, 6, 4)
    G = X @ X.T
    with pytest.warns(TruncationWarning, match="not tight"):
        f = factor(G, d=2)
    assert not f.exact and f.rank == 4 and f.d == 2
    assert f.features.shape == (6, 2)
    np.testing.assert_allclose(np.linalg.norm(f.features, axis=1), 1.0, atol=1e-14)
    assert f.residual > 1e-3
    assert "starting point" in f.message
    # The flag does not depend on the warning.
    g = factor(G, d=2, warn=False)
    assert not g.exact and np.array_equal(f.features, g.features)


def test_tolerance_is_relative_to_largest_eigenvalue():
    # A unit-diagonal Gram with one small eigenvalue; its spectrum is read off numerically.
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    lam = np.array([2.0, 1.0 - 5e-7, 5e-7])  # trace 3, small third eigenvalue
    G = Q @ np.diag(lam) @ Q.T
    D = np.sqrt(np.diag(G))
    G = G / np.outer(D, D)
    small = np.linalg.eigvalsh(G)[0]
    big = np.linalg.eigvalsh(G)[-1]
    assert factor(G, tol=0.5 * small / big, warn=False).rank == 3
    assert factor(G, tol=2.0 * small / big, warn=False).rank == 2
    assert numerical_rank(G, tol=2.0 * small / big) == 2


def test_signs_are_deterministic():
    f1 = factor(etf(4))
    f2 = factor(etf(4).copy())
    np.testing.assert_array_equal(f1.features, f2.features)


def test_sample_features_from_result_object(rng):
    spec = ProblemSpec((3, 2, 4), 0.5)
    U = unit_rows(rng, 3, 2)
    result = SimpleNamespace(class_gram=U @ U.T, spec=spec, status="optimal")
    f = factor(result, samples=True)
    assert f.level == "sample" and f.features.shape == (9, 2)
    lab = spec.labels
    G_lift = (U @ U.T)[np.ix_(lab, lab)]
    np.fill_diagonal(G_lift, 1.0)
    np.testing.assert_allclose(f.features @ f.features.T, G_lift, atol=1e-12)
    assert f.residual <= 1e-12
    # Same with explicit labels on a bare Gram.
    g = factor(U @ U.T, samples=True, labels=lab)
    np.testing.assert_array_equal(g.features, f.features)
    with pytest.warns(TruncationWarning):
        t = factor(result, d=1, samples=True)
    E = t.features @ t.features.T - G_lift
    assert t.residual == pytest.approx(np.linalg.norm(E), rel=1e-12)


def test_failed_result_and_missing_labels():
    with pytest.raises(InvalidInputError, match="no class Gram"):
        factor(SimpleNamespace(class_gram=None, status="failed"))
    with pytest.raises(InvalidInputError, match="labels"):
        factor(etf(3), samples=True)
    with pytest.raises(InvalidInputError, match="labels"):
        factor(etf(3), samples=True, labels=np.array([0, 1, 3]))


@pytest.mark.parametrize("G", [
    np.ones((2, 3)),
    np.array([[1.0, 0.2], [0.3, 1.0]]),
    np.array([[2.0, 0.0], [0.0, 1.0]]),
    np.array([[1.0, np.nan], [np.nan, 1.0]]),
    "not a gram",
])
def test_invalid_gram(G):
    with pytest.raises(InvalidInputError):
        factor(G)


@pytest.mark.parametrize("kwargs", [dict(d=0), dict(d=1.5), dict(tol=-1.0), dict(tol=1.0)])
def test_invalid_options(kwargs):
    with pytest.raises(InvalidInputError):
        factor(etf(3), **kwargs)
