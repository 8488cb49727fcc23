"""Tests of alignment up to rotation (scconvex.align)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from scconvex.errors import InvalidInputError
from scconvex.features.align import gram_distance, procrustes, rotation_distance


def test_recovers_a_known_rotation(rng):
    A = rng.standard_normal((8, 4))
    Q = ortho_group.rvs(4, random_state=1)
    res = procrustes(A, A @ Q)
    np.testing.assert_allclose(res.rotation, Q, atol=1e-12)
    np.testing.assert_allclose(res.aligned, A @ Q, atol=1e-12)
    assert res.distance <= 1e-12 and res.max_row_distance <= 1e-12
    np.testing.assert_allclose(res.rotation @ res.rotation.T, np.eye(4), atol=1e-12)


def test_reflections_are_allowed(rng):
    A = rng.standard_normal((5, 3))
    B = A * np.array([1.0, 1.0, -1.0])
    assert rotation_distance(A, B) <= 1e-12


def test_distance_matches_svd_formula(rng):
    # min_R ||A R - B||^2 = ||A||^2 + ||B||^2 - 2 * (nuclear norm of A^T B).
    A = rng.standard_normal((6, 3))
    B = rng.standard_normal((6, 3))
    nuc = np.linalg.svd(A.T @ B, compute_uv=False).sum()
    ref = np.sqrt(np.sum(A * A) + np.sum(B * B) - 2 * nuc)
    assert rotation_distance(A, B) == pytest.approx(ref, rel=1e-12)
    assert rotation_distance(B, A) == pytest.approx(ref, rel=1e-12)
    assert procrustes(A, B).distance <= np.linalg.norm(A - B)


def test_rotation_invariance_and_triangle(rng):
    A, B, C = (rng.standard_normal((5, 3)) for _ in range(3))
    Q1 = ortho_group.rvs(3, random_state=2)
    Q2 = ortho_group.rvs(3, random_state=3)
    assert rotation_distance(A @ Q1, B @ Q2) == pytest.approx(rotation_distance(A, B))
    assert rotation_distance(A, C) <= rotation_distance(A, B) + rotation_distance(B, C) + 1e-12


def test_different_dimensions_are_padded(rng):
    A = rng.standard_normal((4, 2))
    Q = ortho_group.rvs(3, random_state=4)
    B = np.pad(A, ((0, 0), (0, 1))) @ Q
    assert rotation_distance(A, B) <= 1e-12
    assert gram_distance(A, B) <= 1e-12


def test_gram_distance_absolute_and_relative(rng):
    A = rng.standard_normal((4, 3))
    B = rng.standard_normal((4, 3))
    ref = np.sqrt(np.sum((A @ A.T - B @ B.T) ** 2))
    assert gram_distance(A, B) == pytest.approx(ref, rel=1e-13)
    assert gram_distance(A, B, relative=True) == pytest.approx(
        ref / np.linalg.norm(B @ B.T), rel=1e-13)
    Q = ortho_group.rvs(3, random_state=5)
    assert gram_distance(A, A @ Q) <= 1e-12
    assert gram_distance(A, np.zeros((4, 3)), relative=True) == np.inf


@pytest.mark.parametrize("A, B", [
    (np.ones((3, 2)), np.ones((4, 2))),
    (np.ones(3), np.ones(3)),
    (np.ones((3, 2)), np.full((3, 2), np.inf)),
    (np.ones((0, 2)), np.ones((0, 2))),
])
def test_invalid_input(A, B):
    for fn in (procrustes, rotation_distance, gram_distance):
        with pytest.raises(InvalidInputError):
            fn(A, B)
