"""Tests of the non-convex solver on spheres (scconvex.nonconvex).

References are closed forms (the balanced simplex ETF) or independent computations written
out here, never values produced by the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import taylor_slope

from scconvex.errors import InvalidInputError
from scconvex.features.align import procrustes
from scconvex.features.nonconvex import (
    NonconvexResult,
    class_cost,
    minimize_spheres,
    riemannian_lbfgs,
    sample_cost,
)
from scconvex.problem.spec import ProblemSpec
from scconvex.solvers.manifold import Spheres


def etf_loss(k: int, m: int, tau: float) -> float:
    """Closed form of MATH.md section 4: n log((m-1) + (n-m) exp(-k/((k-1) tau)))."""
    n = k * m
    return n * math.log((m - 1) + (n - m) * math.exp(-k / ((k - 1) * tau)))


TAYLOR_TS = np.logspace(-1, -3.5, 8)


def riemannian_slope(f, egrad, man: Spheres, X, V) -> float:
    """Taylor slope along the retraction curve t -> R_X(tV) (2 if the gradient is right)."""
    return taylor_slope(lambda t: f(man.retract(X, t * V)),
                        man.inner(X, man.proj(X, egrad), V), TAYLOR_TS)


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("level, counts, tau, d", [
    ("class", (5, 3, 2, 1), 0.5, 3), ("class", (20, 20, 2, 2), 0.1, 3),
    ("class", (4, 4, 4), 1.0, 2), ("sample", (4, 3, 2, 1), 0.5, 3), ("sample", (5, 5), 0.2, 2)])
def test_gradient_taylor_slope_riemannian(level, counts, tau, d, rng):
    spec = ProblemSpec(counts, tau)
    cost = (class_cost if level == "class" else sample_cost)(spec, d)
    man = Spheres(spec.k if level == "class" else spec.n, d)
    X = man.random_point(rng)
    V = man.random_tangent(X, rng)
    _, g = cost.fun(X)
    slope = riemannian_slope(lambda U: cost.fun(U)[0], g, man, X, V)
    assert slope == pytest.approx(2.0, abs=0.15)


def test_class_gradient_taylor_slope_ambient(rng):
    # The class loss ignores diag(U U^T), so (D + D^T) U is the full ambient gradient.
    spec = ProblemSpec((6, 3, 2), 0.4)
    cost = class_cost(spec, 4)
    U = rng.standard_normal((3, 4))
    V = rng.standard_normal((3, 4))
    _, g = cost.fun(U)
    slope = taylor_slope(lambda t: cost.fun(U + t * V)[0], float(np.vdot(g, V)), TAYLOR_TS)
    assert slope == pytest.approx(2.0, abs=0.15)


def test_class_cost_values_match_formula(rng):
    # Direct transcription of the class-level formula (MATH.md section 4).
    spec = ProblemSpec((5, 3, 1), 0.7)
    cost = class_cost(spec, 3)
    U = Spheres(3, 3).random_point(rng)
    M = U @ U.T
    n = np.array(spec.counts)
    ref = 0.0
    for c in range(3):
        if n[c] >= 2:
            ref += n[c] * math.log((n[c] - 1) + sum(n[j] * math.exp((M[c, j] - 1) / 0.7)
                                                    for j in range(3) if j != c))
    assert cost.loss(U) == pytest.approx(ref, rel=1e-13)
    assert cost.fun(U)[0] + cost.offset == pytest.approx(ref, rel=1e-13)


# ---------------------------------------------------------------------- optimizer
def test_lbfgs_finds_smallest_eigenvector(rng):
    # Rayleigh quotient on one sphere: the minimum is the smallest eigenvalue.
    A = rng.standard_normal((6, 6))
    A = A + A.T
    lam, vec = np.linalg.eigh(A)
    man = Spheres(1, 6)
    out = riemannian_lbfgs(lambda x: (float((x @ A @ x.T)[0, 0]), 2 * x @ A), man.random_point(rng),
                           man, gtol=1e-10)
    assert out.converged and out.grad_norm <= 1e-10
    assert out.fun == pytest.approx(lam[0], abs=1e-12)
    assert abs(abs(float(out.x[0] @ vec[:, 0])) - 1) < 1e-9


def test_lbfgs_respects_max_iter(rng):
    spec = ProblemSpec((5, 5, 5), 0.5)
    cost = class_cost(spec, 2)
    man = Spheres(3, 2)
    out = riemannian_lbfgs(cost.fun, man.random_point(rng), man, gtol=0.0, max_iter=3)
    assert out.iterations <= 3 and not out.converged


# ---------------------------------------------------------------------- minimize_spheres
@pytest.mark.parametrize("k, m, tau", [(3, 5, 0.5), (4, 6, 0.3), (5, 2, 1.0)])
def test_class_level_reaches_etf(k, m, tau):
    spec = ProblemSpec((m,) * k, tau)
    res = minimize_spheres(spec, k - 1, level="class", restarts=4, seed=1)
    ref = etf_loss(k, m, tau)
    assert all(abs(v - ref) <= 1e-10 * ref for v in res.losses)
    assert all(res.converged)
    etf = np.full((k, k), -1.0 / (k - 1)) + (1 + 1.0 / (k - 1)) * np.eye(k)
    assert np.linalg.norm(res.gram - etf) <= 1e-7


def test_sample_level_reaches_etf_and_collapses():
    spec = ProblemSpec((4, 4, 4), 0.3)
    res = minimize_spheres(spec, 3, level="sample", restarts=3, seed=2)
    ref = etf_loss(3, 4, 0.3)
    assert all(abs(v - ref) <= 1e-10 * ref for v in res.losses)
    H = res.features
    lab = spec.labels
    for c in range(3):
        X = H[lab == c]
        assert np.max(np.linalg.norm(X[:, None] - X[None], axis=2)) <= 1e-4


def test_sample_level_collapse_imbalanced():
    # Landscape evidence: from random starts, features of one class collapse to a point.
    spec = ProblemSpec((6, 4, 3, 2), 0.25)
    res = minimize_spheres(spec, 4, level="sample", restarts=3, seed=7)
    lab = spec.labels
    for i in range(res.restarts):
        assert res.converged[i]
    H = res.features
    spread = max(np.max(np.linalg.norm(H[lab == c][:, None] - H[lab == c][None], axis=2))
                 for c in range(spec.k))
    assert spread <= 1e-4
    # The collapsed sample optimum is the class-level optimum (MATH.md section 4).
    cls = minimize_spheres(spec, 4, level="class", restarts=2, seed=3)
    assert res.loss == pytest.approx(cls.loss, rel=1e-10)


def test_two_seeds_agree_after_procrustes():
    spec = ProblemSpec((20, 20, 2, 2), 0.1)
    a = minimize_spheres(spec, 3, restarts=2, seed=11)
    b = minimize_spheres(spec, 3, restarts=2, seed=12)
    assert not np.allclose(a.features, b.features)
    assert procrustes(a.features, b.features).distance <= 1e-5


def test_seeding_is_reproducible_and_independent_of_restarts():
    spec = ProblemSpec((5, 3, 2), 0.5)
    a = minimize_spheres(spec, 2, restarts=3, seed=4)
    b = minimize_spheres(spec, 2, restarts=3, seed=4)
    c = minimize_spheres(spec, 2, restarts=1, seed=4)
    assert a.losses == b.losses
    np.testing.assert_array_equal(a.features, b.features)
    assert c.losses[0] == a.losses[0]


def test_result_fields_and_progress():
    spec = ProblemSpec((5, 3, 2), 0.5)
    calls = []
    res = minimize_spheres(spec, 3, restarts=3, seed=0,
                           progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert isinstance(res, NonconvexResult)
    assert res.features.shape == (3, 3) and res.restarts == 3
    for field in (res.losses, res.excesses, res.iterations, res.grad_norms, res.converged,
                  res.seconds, res.messages, res.gtols):
        assert len(field) == 3
    assert res.loss == min(res.losses) and res.best_index == int(np.argmin(res.excesses))
    assert res.loss - res.excess == pytest.approx(spec.constant, abs=1e-12)
    assert all(g <= t for g, t in zip(res.grad_norms, res.gtols, strict=True))
    d = res.to_dict()
    assert d["d"] == 3 and len(d["features"]) == 3
    with pytest.raises(AttributeError):
        res.loss = 0.0


def test_x0_warm_start_is_used():
    spec = ProblemSpec((5, 5, 5), 0.5)
    etf2 = np.array([[np.cos(a), np.sin(a)] for a in 2 * np.pi * np.arange(3) / 3])
    res = minimize_spheres(spec, 2, restarts=1, x0=3 * etf2)
    assert res.iterations[0] <= 1
    assert res.loss == pytest.approx(etf_loss(3, 5, 0.5), rel=1e-13)


def test_dimension_one_is_handled():
    # In d = 1 the tangent spaces are {0}: every start is a critical point, and the two
    # class means are either equal or antipodal.
    spec = ProblemSpec((3, 3), 1.0)
    res = minimize_spheres(spec, 1, restarts=4, seed=0)
    antipodal = 6 * math.log(2 + 3 * math.exp(-2.0))
    equal = 6 * math.log(2 + 3.0)
    assert all(res.converged) and max(res.iterations) == 0
    for v in res.losses:
        assert min(abs(v - antipodal), abs(v - equal)) <= 1e-12 * equal


@pytest.mark.parametrize("kwargs", [dict(d=0), dict(d=2.5), dict(restarts=0),
                                    dict(level="group"), dict(tol=-1.0), dict(tol=math.nan),
                                    dict(max_iter=-1), dict(x0=np.ones((2, 2))),
                                    dict(x0=np.full((3, 2), np.nan)),
                                    dict(x0=np.zeros((3, 2))), dict(progress=3),
                                    dict(seed=-1)])
def test_invalid_input(kwargs):
    spec = ProblemSpec((5, 3, 2), 0.5)
    args = dict(d=2)
    args.update(kwargs)
    d = args.pop("d")
    with pytest.raises(InvalidInputError):
        minimize_spheres(spec, d, **args)


def test_spec_must_be_a_spec():
    with pytest.raises(InvalidInputError):
        minimize_spheres((5, 3), 2)


@pytest.mark.parametrize("counts", [(5, 3, 1, 4), (30, 30, 2, 2, 1), (7, 7, 7)])
@pytest.mark.parametrize("slab_rows", [1, 5, None])
def test_sample_cost_matches_dense_loss(counts, slab_rows, rng, monkeypatch):
    # The slab-wise cost against the dense n x n loss of scconvex.loss (another code path).
    import scconvex.losses.sc as sc
    from scconvex.losses.sc import sc_loss_grad

    spec = ProblemSpec(counts, 0.1)
    if slab_rows is not None:
        monkeypatch.setattr(sc, "CHUNK_ENTRIES", slab_rows * spec.n)
    cost = sample_cost(spec, 3)
    man = Spheres(spec.n, 3)
    H = man.random_point(rng)
    value, grad = cost.fun(H)
    ref_value, ref_grad = sc_loss_grad(H, spec.labels, spec.tau)
    assert value + cost.offset == pytest.approx(ref_value, rel=1e-13)
    # Radial parts differ (G_ii = 1 is used); the Riemannian gradients must agree.
    np.testing.assert_allclose(man.proj(H, grad), man.proj(H, ref_grad), atol=1e-12)


@pytest.mark.parametrize("level", ["class", "sample"])
def test_batchwise_spec_is_refused_not_solved_as_full_batch(level):
    # The sphere costs are full-batch costs; a batched spec must not be optimised as one.
    from scconvex.problem.batches import random_batches

    spec = ProblemSpec((4, 4, 2, 2), 0.5, batches=random_batches(12, 4, 0))
    with pytest.raises(InvalidInputError, match="batch-wise"):
        minimize_spheres(spec, 3, level=level, restarts=1)


# ---------------------------------------------------------------------- float resolution
def test_underflowed_gradient_is_not_convergence():
    """At tau = 1e-4 the excess of a random start underflows to 0, and so does its
    gradient: 0 <= 0 passed the gradient test and random starts were reported converged."""
    spec = ProblemSpec((5, 5, 5), 1e-4)
    res = minimize_spheres(spec, 3, restarts=3, seed=0)
    assert not any(res.converged)
    assert all("below float resolution" in m for m in res.messages), res.messages


def test_resolution_of_the_gradient_test(rng):
    # A cost and gradient that are exactly 0 prove nothing when a threshold is required...
    man = Spheres(3, 2)
    flat = riemannian_lbfgs(lambda X: (0.0, np.zeros_like(X)), man.random_point(rng), man,
                            gtol=lambda f: 1e-9 * f, resolution=1e-146)
    assert not flat.converged and "below float resolution" in flat.message
    # ...while a threshold above the resolution still decides as before.
    A = np.diag([3.0, 1.0])
    quad = riemannian_lbfgs(lambda X: (float(np.sum((X @ A) * X)), 2 * X @ A),
                            man.random_point(rng), man, gtol=1e-10, resolution=1e-146)
    assert quad.converged and quad.fun == pytest.approx(3.0, abs=1e-12)


def test_gradient_norm_does_not_underflow():
    from scconvex.features.nonconvex import _norm

    V = np.full((4, 3), 1e-170)
    assert V[0, 0] ** 2 == 0.0  # the unscaled squares vanish
    assert _norm(V) == pytest.approx(1e-170 * math.sqrt(12), rel=1e-15)
    assert _norm(np.zeros((2, 2))) == 0.0
