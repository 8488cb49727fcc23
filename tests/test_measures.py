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
    # 1 when the minority classes collapse, 0 at the cosine of the simplex ETF (k = 6).
    assert got["minority_collapse"] == pytest.approx((got["cos_min_min"] + 0.2) / 1.2)


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
    # Balanced: every class is majority and minority; the named cosines are the mean.
    for name in ("cos_min_min", "cos_maj_maj", "cos_maj_min"):
        assert got[name] == pytest.approx(-0.25, abs=1e-12)
    assert got["minority_classes"] == k and got["minority_collapse"] == pytest.approx(0)


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


def test_minority_collapse_reads_forwards():
    """Issue 19: larger means more collapse (it was 1 - cos_min_min, 0 when collapsed)."""
    k = 4
    counts = [50, 50, 5, 5]
    collapsed = np.array([[1, -0.6, -0.3, -0.3], [-0.6, 1, -0.3, -0.3],
                          [-0.3, -0.3, 1, 1.0], [-0.3, -0.3, 1.0, 1]])
    spread = np.full((k, k), -1 / 3) + np.eye(k) * 4 / 3
    geo = lambda M: BlockGeometry(M, np.ones(k, int), np.arange(k))  # noqa: E731
    assert summary(geo(collapsed), counts=counts)["minority_collapse"] == pytest.approx(1)
    assert summary(geo(spread), counts=counts)["minority_collapse"] == pytest.approx(0)


def test_solve_and_sweep_share_one_minority_rule(tmp_path):
    """Issue 19: solve --step 6,0.5,1,3 printed cos_min_min NaN, the atlas -0.2."""
    from scconvex import ProblemSpec, solve
    from scconvex.studies.atlas import Atlas
    from scconvex.studies.sweep import build_points, run_sweep

    spec = ProblemSpec.step(6, 0.5, 1, 3, 0.5)
    from_solve = solve(spec).to_dict()["measures"]["cos_min_min"]
    points = build_points({"step_k": 6, "rho": 0.5, "n_min": 3, "R": "1", "tau": "0.5"})
    with Atlas(tmp_path / "a.sqlite", create=True) as atlas:
        run_sweep(points, atlas, workers=0)
        (row,) = atlas.rows()
    assert from_solve == pytest.approx(-0.2, abs=1e-9)
    assert row["cos_min_min"] == pytest.approx(from_solve, abs=1e-12)


def test_older_atlas_rows_keep_verifying_and_export_the_new_definition(tmp_path):
    import json
    import sqlite3

    from scconvex.studies.atlas import Atlas, table, verify_atlas
    from scconvex.studies.sweep import build_points, run_sweep

    points = build_points({"step_k": 4, "rho": 0.5, "n_min": 2, "R": "10", "tau": "0.5"})
    path = tmp_path / "a.sqlite"
    with Atlas(path, create=True) as atlas:
        run_sweep(points, atlas, workers=0)
        (row,) = atlas.rows()
    new = row["minority_collapse"]
    old = 1.0 - row["cos_min_min"]
    measures = json.loads(row["measures"])
    del measures["measures_version"]
    measures["minority_collapse"] = old
    if measures.get("bounds"):   # the proven interval, in the old definition too
        lo, hi = measures["bounds"]["cos_min_min"]
        measures["bounds"]["minority_collapse"] = [1.0 - hi, 1.0 - lo]
    with sqlite3.connect(path) as conn:   # what an atlas written before issue 19 holds
        conn.execute("UPDATE solves SET minority_collapse = ?, measures = ?",
                     (old, json.dumps(measures)))
    with Atlas(path) as atlas:
        assert all(r.ok for r in verify_atlas(atlas)), verify_atlas(atlas)[0].reasons
        assert table(atlas)[0]["minority_collapse"] == pytest.approx(new)


def test_older_certificate_files_keep_verifying():
    """A file written before issue 19 holds version-1 measures (1 - cos_min_min, no
    measures_version): verify re-checks it against those definitions, and a file that
    says version 2 against today's."""
    import json

    from scconvex import ProblemSpec, solve
    from scconvex.certificates.verify import verify_data

    data = json.loads(json.dumps(solve(ProblemSpec.step(4, 0.5, 10, 2, 0.5)).to_dict()))
    assert verify_data(data).ok
    m = data["measures"]
    old = json.loads(json.dumps(data))
    del old["measures"]["measures_version"]
    old["measures"]["minority_collapse"] = 1.0 - m["cos_min_min"]
    if m.get("bounds"):
        lo, hi = m["bounds"]["cos_min_min"]
        old["measures"]["bounds"]["minority_collapse"] = [1.0 - hi, 1.0 - lo]
    assert verify_data(old).ok, verify_data(old).reasons
    mixed = json.loads(json.dumps(data))
    mixed["measures"]["minority_collapse"] = 1.0 - m["cos_min_min"]   # old value, new version
    assert not verify_data(mixed).ok
