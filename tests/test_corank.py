"""The native backend in the block Gram: the rank g - 1 manifold (scconvex.solvers.corank).

References are exact identities (the tangent space, the factor, Woodbury's inverse), finite
differences, and the factor-space solver as a second method.
"""

import numpy as np
import pytest

from scconvex import ProblemSpec
from scconvex.losses.sc import LogExcessCost
from scconvex.problem.model import build_model
from scconvex.solvers import get_backend
from scconvex.solvers.corank import CorankOne, coarsen, etf, prolong
from scconvex.solvers.face import _woodbury_factor
from scconvex.threads import blas_threads

NATIVE = get_backend("native")
SPHERE = np.array([True, False, True, True, False, False, True, False, True])


def _point(rng, sphere=SPHERE):
    g = sphere.size
    W = rng.standard_normal((g, g - 1))
    W[sphere] /= np.linalg.norm(W[sphere], axis=1)[:, None]
    n = np.linalg.svd(W)[0][:, -1]
    return W @ W.T, n


def _sym(rng, g):
    E = rng.standard_normal((g, g))
    return E + E.T


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_retraction_stays_on_the_manifold_and_is_first_order(rng, dtype):
    Q, n = _point(rng)
    man = CorankOne(SPHERE, dtype)
    man.attach(Q, n)
    d = man.proj(Q, _sym(rng, Q.shape[0]))
    assert abs(n @ d @ n) < 1e-12 and np.abs(np.diag(d)[SPHERE]).max() < 1e-12
    errors = []
    for t in (1e-2, 1e-3, 1e-4):
        Y = man.retract(Q, t * d)
        assert man.feasible(Y)
        lam = np.linalg.eigvalsh(Y)
        null = man.info(Y).null
        # Rank g - 1 with the remembered null vector, unit diagonal on sphere rows.
        assert abs(lam[0]) < 1e-10 and lam[1] > 1e-3 and np.abs(Y @ null).max() < 1e-10
        np.testing.assert_allclose(np.diag(Y)[SPHERE], 1.0, atol=1e-15)
        errors.append(np.abs(Y - Q - t * d).max())
    # Second-order error: 10x shorter steps, 100x smaller deviation (float32 factors only
    # perturb the null vector's update, which the projection absorbs to first order).
    assert errors[1] < 0.02 * errors[0] and errors[2] < 0.02 * errors[1]


def test_slope_along_the_retraction_is_the_derivative(rng):
    Q, n = _point(rng)
    man = CorankOne(SPHERE)
    man.attach(Q, n)
    g = Q.shape[0]
    d = man.proj(Q, _sym(rng, g))
    A = _sym(rng, g)

    def f(Y):
        return float(np.vdot(A, Y) + 0.25 * np.vdot(Y, Y))

    for t in (0.05, 0.3):
        Y, step = man.retract_scaled(Q, t * d)
        grad = man.proj(Y, A + 0.5 * Y)
        h = 1e-6
        fd = (f(man.retract(Q, (t + h) * d)) - f(man.retract(Q, (t - h) * d))) / (2 * h)
        assert man.slope(grad, d, step) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_factor_reproduces_the_point(rng):
    Q, n = _point(rng)
    man = CorankOne(SPHERE)
    man.attach(Q, n)
    W = man.factor(Q)
    assert W.shape == (Q.shape[0], Q.shape[0] - 1)
    np.testing.assert_allclose(W @ W.T, Q, atol=1e-12)


def test_an_indefinite_matrix_fails_the_psd_test(rng):
    # Points are made with their null vector (Q n = 0), so Q + n n^T is positive definite
    # exactly when Q is PSD on the rest.
    Q, n = _point(rng)
    x = rng.standard_normal(Q.shape[0])
    x -= (x @ n) * n
    x /= np.linalg.norm(x)
    man = CorankOne(SPHERE)
    assert man.attach(Q, n).chol is not None
    bad = Q - (x @ Q @ x + 1e-3) * np.outer(x, x)
    assert np.abs(bad @ n).max() < 1e-12 and np.linalg.eigvalsh(bad)[0] < 0
    assert man.attach(bad, n).chol is None


def test_woodbury_preconditioner_inverts_diagonal_plus_face_curvature(rng):
    # On T, D o X + sigma (Q^+ X n n^T + n n^T X Q^+) is inverted exactly.
    Q, n = _point(rng)
    g = Q.shape[0]
    D = np.exp(rng.standard_normal((g, g)))
    D = D + D.T
    sigma = 0.7
    L, nd = _woodbury_factor(n, sigma, Q, D, np.float64)
    X = _sym(rng, g)
    X -= (n @ X @ n) * np.outer(n, n)                   # n^T X n = 0
    Qp = np.linalg.pinv(Q)
    y = X @ n
    R = D * X + sigma * (np.outer(Qp @ y, n) + np.outer(n, Qp @ y))
    w = np.linalg.solve(L @ L.T, 2.0 * ((R / D) @ n))
    Z = (R - np.outer(w, n) - np.outer(n, w)) / D
    np.testing.assert_allclose(Z, X, atol=1e-9 * np.abs(X).max())


def test_prolonged_coarse_solution_is_a_point_of_the_fine_manifold():
    model = build_model(ProblemSpec.long_tail(400, 50, 300, 0.1), "group")
    cost = model.loss.native_cost(model)
    labels, sizes, counts = coarsen(cost, 12)
    assert labels.max() + 1 <= 13 and np.isclose(sizes.sum(), model.spec.k)
    coarse = LogExcessCost(sizes, counts, 0.1)
    Qc, nc = etf(coarse.geometry)
    Q, n = prolong(coarse, Qc, nc, labels, cost.geometry)
    lam = np.linalg.eigvalsh(Q)
    assert abs(lam[0]) < 1e-10 and lam[1] > 0 and np.abs(Q @ n).max() < 1e-10
    np.testing.assert_allclose(np.diag(Q)[cost.sphere], 1.0)


@pytest.mark.parametrize("tau", [0.02, 0.1, 1.0])
def test_gram_and_factor_variables_certify_the_same_answer(rng, tau):
    counts = tuple(int(c) for c in rng.choice(np.arange(2, 400), size=40, replace=False))
    for model in (build_model(ProblemSpec(counts, tau), "class"),
                  build_model(ProblemSpec.long_tail(300, 30, 60, tau), "group")):
        with blas_threads(1):
            gram = NATIVE.solve(model, {"variable": "gram"})
            factor = NATIVE.solve(model, {"variable": "factor"})
        assert gram.status == factor.status == "optimal"
        assert factor.info["variable"] == "factor"
        # Distinct counts at class level have an optimum of rank k - 1, which Newton in Q
        # reaches; from a poor coarse start (7 groups for the 59-block tail) the steps can
        # run into the boundary of the manifold at tau = 1, and the factor finishes.
        assert gram.info["variable"] == "gram" or model.level.compressed
        np.testing.assert_allclose(gram.X, factor.X, atol=1e-5)


def test_a_lower_rank_optimum_is_handed_to_the_factor(rng):
    # Groups of equal counts that can sum to zero (tau = 2): the optimum has a lower rank
    # than g - 1, the steps in Q stall, and the factor finishes.
    base = tuple(int(c) for c in rng.choice(np.arange(2, 300), size=10, replace=False))
    model = build_model(ProblemSpec(base * 3 + (1, 1), 2.0), "group")
    gram = NATIVE.solve(model, {"variable": "gram"})
    factor = NATIVE.solve(model, {"variable": "factor"})
    assert gram.status == factor.status == "optimal"
    assert gram.info["variable"] == "factor"
    np.testing.assert_allclose(gram.X, factor.X, atol=1e-5)


def test_bad_variable_option_is_refused():
    model = build_model(ProblemSpec((5, 4, 3), 0.1), "class")
    with pytest.raises(Exception, match="variable"):
        NATIVE.solve(model, {"variable": "q"})
