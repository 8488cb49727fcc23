"""Tests of the product-of-spheres geometry (scconvex.manifold)."""

from __future__ import annotations

import numpy as np
import pytest

from scconvex.errors import InvalidInputError
from scconvex.solvers.manifold import Spheres


@pytest.fixture
def man():
    return Spheres(7, 4)


def test_shape_and_dimension(man):
    assert man.shape == (7, 4)
    assert man.dim == 7 * 3


@pytest.mark.parametrize("n, d", [(0, 3), (3, 0), (2.5, 3), (True, 3), (3, -1)])
def test_invalid_sizes(n, d):
    with pytest.raises(InvalidInputError):
        Spheres(n, d)


def test_random_point_is_on_manifold_and_seeded(man):
    X = man.random_point(np.random.default_rng(5))
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-15)
    np.testing.assert_array_equal(X, man.random_point(np.random.default_rng(5)))
    assert not np.array_equal(X, man.random_point(np.random.default_rng(6)))
    assert man.check_point(X) is not None


def test_random_point_needs_generator(man):
    with pytest.raises(InvalidInputError):
        man.random_point(5)


def test_projection_is_orthogonal_idempotent(man, rng):
    X = man.random_point(rng)
    V = rng.standard_normal(man.shape)
    P = man.proj(X, V)
    np.testing.assert_allclose(np.sum(P * X, axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(man.proj(X, P), P, atol=1e-14)
    # The discarded part is normal: orthogonal to every tangent vector.
    W = man.proj(X, rng.standard_normal(man.shape))
    assert abs(man.inner(X, V - P, W)) < 1e-13
    assert man.norm(X, P) == pytest.approx(np.sqrt(man.inner(X, P, P)))


def test_retraction_is_first_order(man, rng):
    X = man.random_point(rng)
    V = man.random_tangent(X, rng)
    assert man.norm(X, V) == pytest.approx(1.0)
    np.testing.assert_allclose(man.retract(X, 0 * V), X, atol=1e-15)
    ts = np.array([1e-1, 1e-2, 1e-3])
    errs = [np.linalg.norm(man.retract(X, t * V) - (X + t * V)) for t in ts]
    slope = np.polyfit(np.log(ts), np.log(errs), 1)[0]
    assert slope == pytest.approx(2.0, abs=0.1)
    Y = man.retract(X, 3.0 * V)
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, atol=1e-15)


def test_transport_lands_in_tangent_space(man, rng):
    X = man.random_point(rng)
    Y = man.random_point(rng)
    V = man.random_tangent(X, rng)
    T = man.transport(X, Y, V)
    np.testing.assert_allclose(np.sum(T * Y, axis=1), 0.0, atol=1e-14)


def test_geodesic_distance_against_angles():
    man = Spheres(2, 2)
    th = np.array([0.3, 2.9])
    X = np.c_[np.ones(2), np.zeros(2)]
    Y = np.c_[np.cos(th), np.sin(th)]
    assert man.dist(X, Y) == pytest.approx(np.hypot(*th), rel=1e-12)
    assert man.dist(X, X) == 0.0


def test_check_point_rejects(man, rng):
    X = man.random_point(rng)
    with pytest.raises(InvalidInputError):
        man.check_point(X[:, :3])
    with pytest.raises(InvalidInputError):
        man.check_point(2 * X)
    X[0, 0] = np.nan
    with pytest.raises(InvalidInputError):
        man.check_point(X)
