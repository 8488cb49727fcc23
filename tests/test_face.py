"""Newton directions on the face of the PSD cone (scconvex.backends.face).

The references are exact identities (the projection, the lift), the Riemannian Hessian of
the factor (itself Taylor-tested in test_native.py), and the factor-space Newton method
as a second solver.
"""

import numpy as np
import pytest

from scconvex import ProblemSpec
from scconvex.losses.sc import LogExcessCost
from scconvex.problem.model import build_model
from scconvex.solvers import get_backend
from scconvex.solvers import native as nt
from scconvex.solvers.face import MAX_NULL, FaceNewton, _FaceProjection

NATIVE = get_backend("native")


def _sym(rng, g):
    E = rng.standard_normal((g, g))
    return E + E.T


def _null_basis(rng, W):
    g, r = W.shape
    return np.linalg.qr(np.linalg.svd(W)[0][:, r:] @ rng.standard_normal((g - r, g - r)))[0]


@pytest.mark.parametrize("k0", [0, 1, 3])
def test_projection_is_the_orthogonal_projection_onto_the_face_tangent_space(rng, k0):
    g = 9
    sphere = np.array([True, False, True, True, False, False, True, False, True])
    W = rng.standard_normal((g, g - k0))
    N = _null_basis(rng, W) if k0 else np.zeros((g, 0))
    proj = _FaceProjection(N, np.flatnonzero(sphere))
    E, F = _sym(rng, g), _sym(rng, g)
    PE, PF = proj(E.copy()), proj(F.copy())
    # In T: N^T E N = 0 and the diagonal of sphere rows vanishes.
    assert np.abs(N.T @ PE @ N).max(initial=0.0) < 1e-12
    assert np.abs(np.diag(PE)[sphere]).max() < 1e-12
    # Idempotent, symmetric, and what it removes is orthogonal to T.
    np.testing.assert_allclose(proj(PE.copy()), PE, atol=1e-12)
    np.testing.assert_allclose(PE, PE.T, atol=1e-12)
    assert abs(np.vdot(E - PE, PF)) < 1e-10 * np.linalg.norm(E) * np.linalg.norm(PF)


@pytest.mark.parametrize("k0", [0, 1, 2])
def test_lift_reproduces_the_direction_in_q(rng, k0):
    g = 8
    W = rng.standard_normal((g, g - k0))
    N = _null_basis(rng, W) if k0 else np.zeros((g, 0))
    E = _FaceProjection(N, np.array([0, 3]))(_sym(rng, g))
    V = FaceNewton.lift(np.linalg.solve(W.T @ W, W.T).T, N, E)
    np.testing.assert_allclose(V @ W.T + W @ V.T, E, atol=1e-10 * np.abs(E).max())
    # Tangent to the sphere rows, whose diagonal E leaves at zero.
    assert np.abs(np.einsum("ij,ij->i", W, V)[[0, 3]]).max() < 1e-10


@pytest.mark.parametrize("level,counts", [("class", (31, 17, 12, 9, 5, 3, 2)),
                                          ("group", (9, 9, 6, 6, 6, 4, 3, 3, 2, 1))])
def test_face_model_is_the_second_derivative_at_the_optimum(rng, level, counts):
    # At a certified optimum the face model of D^2 F along the lifted direction equals the
    # Riemannian Hessian of the factor (Taylor-tested in test_native.py), up to the part of
    # S off the null space, which vanishes with the gradient.
    model = build_model(ProblemSpec(counts, 0.1), level)
    cost = LogExcessCost(model.sizes, model.block_counts, 0.1)
    problem = nt._Problem(cost, int(sum(model.sizes)), face=True)
    W = nt._start(model.sizes, model.dim - 1)
    out = nt._minimize(problem, W, tol=1e-13, max_iter=5000, deadline=np.inf, memory=5,
                       newton_gap=1e-2)
    assert out.status == "optimal"
    p = out.point
    Q, C, state = p.data
    face = FaceNewton(cost)
    system = face._system(p.X, Q, C)
    assert system is not None
    proj = system["proj"]
    hess_w = problem.hessian(p)
    hess_q = face.hessian(system, state)
    F = proj(_sym(rng, model.dim))
    for _ in range(3):
        E = proj(_sym(rng, model.dim))
        V = face.lift(system["K"], system["N"], E)
        model_q = float(np.vdot(E, hess_q(E.copy())))
        exact = float(np.vdot(V, hess_w(V)))
        assert abs(model_q - exact) <= 1e-6 * abs(exact)
        # Self-adjoint, as conjugate gradients need.
        assert abs(np.vdot(F, hess_q(E.copy())) - np.vdot(E, hess_q(F.copy()))) <= 1e-10 * (
            np.linalg.norm(E) * np.linalg.norm(F) * np.linalg.norm(C))


def test_no_face_direction_for_a_rank_deficient_factor(rng):
    model = build_model(ProblemSpec((9, 7, 5, 4, 3, 2), 0.1), "class")
    cost = LogExcessCost(model.sizes, model.block_counts, 0.1)
    face = FaceNewton(cost)
    problem = nt._Problem(cost, 6)
    W = rng.standard_normal((6, 5))
    W[:, 4] = W[:, 3]                      # rank 4 with 5 columns
    W /= np.linalg.norm(W, axis=1)[:, None]
    Q, C, state = problem.evaluate(W).data
    assert face.direction(W, Q, C, state, 0.1, 50) is None
    # Too many null directions for the small Gram system: also the factor's job.
    W = rng.standard_normal((6, 6 - MAX_NULL - 1))
    W /= np.linalg.norm(W, axis=1)[:, None]
    Q, C, state = problem.evaluate(W).data
    assert face.direction(W, Q, C, state, 0.1, 50) is None


@pytest.mark.parametrize("level", ["class", "group"])
@pytest.mark.parametrize("tau", [0.02, 0.1, 2.0])
def test_face_and_factor_newton_certify_the_same_answer(rng, level, tau):
    # Distinct counts, and a long tail whose group Gram has full rank g - 1 at the optimum
    # (groups of equal counts that can sum to zero have lower rank: see the next test).
    if level == "class":
        counts = tuple(int(c) for c in rng.choice(np.arange(2, 300), size=30, replace=False))
        spec = ProblemSpec(counts, tau)
    else:
        spec = ProblemSpec.long_tail(300, 30, 60, tau)
    model = build_model(spec, level)
    face = NATIVE.solve(model, {"newton_gap": 0.5})
    factor = NATIVE.solve(model, {"newton_gap": 0.5, "face": False})
    assert face.status == "optimal" and factor.status == "optimal"
    assert face.info["face_steps"] >= 1 and factor.info["face_steps"] == 0
    np.testing.assert_allclose(face.X, factor.X, atol=1e-6)


@pytest.mark.parametrize("tau", [0.1, 2.0])
def test_a_lower_rank_optimum_is_left_to_the_factor(rng, tau):
    # Ten groups of three equal counts: the face steps would leave the PSD cone (the
    # optimum has a lower rank than the factor), so the factor takes every Newton step,
    # and the answer is the one certified without the face.
    counts = tuple(int(c) for c in rng.choice(np.arange(2, 300), size=10, replace=False))
    model = build_model(ProblemSpec(counts * 3 + (1, 1), tau), "group")
    face = NATIVE.solve(model, {"newton_gap": 0.5})
    factor = NATIVE.solve(model, {"newton_gap": 0.5, "face": False})
    assert face.status == "optimal" and factor.status == "optimal"
    assert face.info["newton_iterations"] >= 1
    np.testing.assert_allclose(face.X, factor.X, atol=1e-6)


def test_single_precision_directions_match_double_precision(rng):
    # Float32 conjugate gradients (used above 200 blocks) give the float64 direction to
    # within what their residual tolerance allows, also near the optimum, where the
    # projected gradient is many orders below the gradient itself.
    model = build_model(ProblemSpec.long_tail(300, 30, 60, 0.1), "group")
    cost = LogExcessCost(model.sizes, model.block_counts, 0.1)
    problem = nt._Problem(cost, int(sum(model.sizes)))
    out = nt._minimize(problem, nt._start(model.sizes, model.dim - 1), tol=1e-9, max_iter=5000,
                       deadline=np.inf, memory=5, newton_gap=1e-2)
    p = out.point
    Q, C, state = p.data
    d64 = FaceNewton(cost).direction(p.X, Q, C, state, 1e-4, 500)
    d32 = FaceNewton(cost.astype(np.float32), np.float32).direction(p.X, Q, C, state, 1e-4,
                                                                 500)
    assert d64 is not None and d32 is not None and d32.dtype == np.float64
    assert np.linalg.norm(d32 - d64) <= 1e-2 * np.linalg.norm(d64)
    # A descent direction for the float64 gradient.
    assert np.vdot(p.grad, d32) < 0
