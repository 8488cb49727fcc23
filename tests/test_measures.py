"""Summary measures, against direct computations on the k x k class Gram."""

import math

import numpy as np
import pytest

from scconvex.certificates.measures import (
    BlockGeometry,
    default_minority,
    geometry_of,
    step_minority,
    summary,
)


def _random_gram(rng, k, d=3):
    U = rng.normal(size=(k, d))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return U @ U.T


def _direct(M, minority):
    """The measures by loops over class pairs (independent of the block formulas)."""
    k = len(M)
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    etf = -1.0 / (k - 1)

    def mean(a, b):
        vals = [M[i, j] for i, j in pairs if a[i] and b[j]]
        return sum(vals) / len(vals) if vals else math.nan

    maj = ~minority
    return {"etf_distance": math.sqrt(sum((M[i, j] - etf) ** 2 for i, j in pairs)),
            "cos_min": min(M[i, j] for i, j in pairs),
            "cos_max": max(M[i, j] for i, j in pairs),
            "cos_mean": sum(M[i, j] for i, j in pairs) / len(pairs),
            "cos_maj_maj": mean(maj, maj), "cos_min_min": mean(minority, minority),
            "cos_maj_min": mean(maj, minority),
            "angle_min_deg": math.degrees(math.acos(max(M[i, j] for i, j in pairs)))}


def test_class_level_measures_equal_pair_loops(rng):
    M = _random_gram(rng, 6)
    minority = np.array([0, 0, 1, 0, 1, 1], dtype=bool)
    got = summary(BlockGeometry(M, np.ones(6, int), np.arange(6)), minority)
    for name, value in _direct(M, minority).items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert got["minority_collapse"] == pytest.approx(1 - got["cos_min_min"])


def test_group_form_equals_its_lift():
    # 3 classes of one group, 2 of another: a_1, a_2, b.
    B = np.array([[-0.3, 0.05], [0.05, 0.6]])
    geo = BlockGeometry(B, np.array([3, 2]), np.array([0, 0, 0, 1, 1]))
    M = geo.class_gram()
    minority = np.array([0, 0, 0, 1, 1], dtype=bool)
    got = summary(geo, minority)
    for name, value in _direct(M, minority).items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert got["cos_min_min"] == pytest.approx(0.6) and got["cos_maj_maj"] == -0.3


def test_etf_has_zero_distance_and_the_right_angle():
    k = 5
    M = np.full((k, k), -1 / (k - 1)) + (1 + 1 / (k - 1)) * np.eye(k)
    got = summary(BlockGeometry(M, np.ones(k, int), np.arange(k)), counts=[7] * k)
    assert got["etf_distance"] == pytest.approx(0, abs=1e-12)
    assert got["angle_min_deg"] == pytest.approx(math.degrees(math.acos(-0.25)))
    assert math.isnan(got["cos_min_min"]) and got["minority_classes"] == 0


def test_minority_rules():
    assert default_minority([500, 500, 50, 50, 49]).tolist() == [0, 0, 1, 1, 1]
    assert default_minority([100, 90, 10, 9]).tolist() == [0, 0, 1, 1]
    assert step_minority(10, 0.3).tolist() == [0] * 3 + [1] * 7


def test_solve_json_carries_measures():
    from scconvex import ProblemSpec, solve

    data = solve(ProblemSpec.step(4, 0.5, 10, 2, 0.5)).to_dict()
    m = data["measures"]
    M = np.array(data["class_gram"])
    assert m["cos_min_min"] == pytest.approx(M[2, 3], abs=1e-12)
    assert m["cos_maj_min"] == pytest.approx(M[0, 2], abs=1e-12)
    assert m["rank"] == data["rank"]
    assert geometry_of(data).k == 4
