"""``atlas verify`` re-derives tight tightness rows from their stored features.

A row claiming "tight at d" holds the best restart's features; ``atlas verify`` recomputes
their loss and judges it against the recomputed certificate. These tests edit the stored
features the way a forger would, check an independently built optimum (the simplex ETF,
whose loss has a closed form), and open an atlas written before the features column.
"""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

import scconvex.studies.atlas as atlas_module
from scconvex.features.tightness import tightness
from scconvex.problem.spec import ProblemSpec
from scconvex.studies.atlas import ATLAS_SCHEMA, Atlas, make_record, problem_key, verify_atlas
from scconvex.studies.sweep import build_points, run_sweep

STEP = {"step_k": 4, "rho": 0.5, "n_min": 3, "R": "2", "tau": "0.1", "dims": "2,3",
        "restarts": 2}
"""Counts 6,6,3,3: not tight at d = 2, tight at d = k - 1 = 3."""


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("atlas") / "a.sqlite")
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points(STEP), atlas, workers=0)
        run_sweep(build_points({**STEP, "nc_level": "sample", "restarts": 1}), atlas,
                  workers=0)
    return path


def _copy(path: str, tmp_path, sql: str = "", params=(), name: str = "copy") -> str:
    copy = str(tmp_path / f"{name}.sqlite")
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    if sql:
        conn = sqlite3.connect(copy)
        with conn:
            conn.execute(sql, params)
        conn.close()
    return copy


def _verify(path: str):
    with Atlas(path) as atlas:
        return verify_atlas(atlas)


def _stored_features(path: str, level: str, d: int = 3) -> np.ndarray:
    conn = sqlite3.connect(path)
    (text,) = conn.execute("SELECT features FROM tightness WHERE d = ? AND nc_level = ?",
                           (d, level)).fetchone()
    conn.close()
    return np.array(json.loads(text))


def _with_features(path: str, tmp_path, level: str, value) -> list[str]:
    """Reasons of atlas verify after replacing the features of the tight d = 3 row."""
    text = value if isinstance(value, str) else json.dumps(np.asarray(value).tolist())
    copy = _copy(path, tmp_path, "UPDATE tightness SET features = ? WHERE d = 3 AND "
                 "nc_level = ?", (text, level))
    return [r for res in _verify(copy) for r in res.reasons]


def test_tight_rows_store_unit_features_of_their_level(atlas_file):
    with Atlas(atlas_file) as atlas:
        rows = atlas.tightness_rows()
    assert {(t["d"], t["nc_level"], t["tight"]) for t in rows} == {
        (2, "class", 0), (3, "class", 1), (2, "sample", 0), (3, "sample", 1)}
    for t in rows:
        if not t["tight"]:
            assert t["features"] is None  # a claim of "not tight" needs no features
            continue
        X = np.array(json.loads(t["features"]))
        assert X.shape == ((4, 3) if t["nc_level"] == "class" else (18, 3))
        np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
        assert t["features_note"] is None


def test_honest_tight_rows_are_rederived(atlas_file):
    results = _verify(atlas_file)
    assert len(results) == 1 and results[0].ok, results[0].reasons
    notes = results[0].rederived
    assert len(notes) == 2 and not results[0].not_rederivable
    assert any("4 x 3 class-level" in n for n in notes)
    assert any("18 x 3 sample-level" in n for n in notes)


def test_cli_reports_rederived_rows(atlas_file, capsys):
    from scconvex.cli import main

    assert main(["atlas", "verify", atlas_file]) == 0
    assert "tight rows: 2 re-derived from their features, 0 not re-derivable" \
        in capsys.readouterr().out
    assert main(["atlas", "verify", atlas_file, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tight_rederived"] == 2 and out["tight_not_rederivable"] == []


@pytest.mark.parametrize("level", ["class", "sample"])
def test_rotated_features_are_still_rederived(atlas_file, tmp_path, level):
    """The check is on the recomputed loss, not on the stored bytes: a rotation of the
    features is the same point of the problem."""
    X = _stored_features(atlas_file, level)
    Q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))
    assert _with_features(atlas_file, tmp_path, level, X @ Q) == []


@pytest.mark.parametrize("level", ["class", "sample"])
def test_random_unit_features_are_rejected(atlas_file, tmp_path, level):
    X = _stored_features(atlas_file, level)
    Y = np.random.default_rng(7).standard_normal(X.shape)
    Y /= np.linalg.norm(Y, axis=1)[:, None]
    reasons = _with_features(atlas_file, tmp_path, level, Y)
    assert any("tightness row d=3: tight claim rejected" in r and "does not meet the rule"
               in r for r in reasons), reasons


def test_features_of_another_labelling_are_rejected(atlas_file, tmp_path):
    """Sample features moved to another class (first and last sample swapped): unit rows
    of the right shape, but not an optimum of this problem."""
    X = _stored_features(atlas_file, "sample")
    X[[0, -1]] = X[[-1, 0]]
    reasons = _with_features(atlas_file, tmp_path, "sample", X)
    assert any("does not meet the rule" in r for r in reasons), reasons


@pytest.mark.parametrize("change, expected", [
    (lambda X: X * np.where(np.arange(len(X)) == 1, 1.1, 1.0)[:, None], "not unit-norm"),
    (lambda X: X[:, :2] / np.linalg.norm(X[:, :2], axis=1)[:, None], "shape"),
    (lambda X: np.vstack([X, X[:1]]), "shape"),
    (lambda X: X[:, :, None], "shape"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 0, np.nan, X), "finite"),
])
def test_malformed_features_are_rejected(atlas_file, tmp_path, change, expected):
    X = change(_stored_features(atlas_file, "class"))
    text = json.dumps(X.tolist())  # writes NaN as the bare literal JSON readers accept
    reasons = _with_features(atlas_file, tmp_path, "class", text)
    assert any("tight claim rejected" in r and expected in r for r in reasons), reasons


@pytest.mark.parametrize("text", ["not json", "[[1, 2], [3]]", '{"a": 1}', '"s"', "[]"])
def test_damaged_features_are_rejected_not_a_crash(atlas_file, tmp_path, text):
    reasons = _with_features(atlas_file, tmp_path, "class", text)
    assert any("tight claim rejected" in r for r in reasons), reasons


def test_best_loss_must_be_the_loss_of_the_features(atlas_file, tmp_path):
    """Features of the optimum under a best_loss that is still consistent with the gaps
    (edited by one part in 1e9 with its rel_gap) are still not what was stored."""
    copy = _copy(atlas_file, tmp_path, "UPDATE tightness SET best_loss = best_loss * "
                 "(1 + 1e-8), rel_gap = rel_gap + 1e-8 WHERE d = 3 AND nc_level = 'class'")
    reasons = [r for res in _verify(copy) for r in res.reasons]
    assert any("tight claim rejected" in r for r in reasons), reasons


def _etf(angle: float) -> np.ndarray:
    phis = angle + 2 * math.pi * np.arange(3) / 3
    return np.column_stack([np.cos(phis), np.sin(phis)])


def test_independent_simplex_etf_is_accepted_and_a_near_one_is_not(tmp_path):
    """Balanced counts 4,4,4 at tau 0.5: the optimum is the simplex ETF, tight at d = 2,
    with loss n log((m - 1) + (n - m) exp(-k / ((k - 1) tau))) (MATH.md section 4)."""
    path = str(tmp_path / "etf.sqlite")
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points({"counts": ["4x3"], "tau": "0.5", "dims": "2",
                                "restarts": 1}), atlas, workers=0)
        (row,) = atlas.tightness_rows()
    closed = 12 * math.log(3 + 8 * math.exp(-3 / (2 * 0.5)))
    assert row["tight"] == 1 and row["best_loss"] == pytest.approx(closed, rel=1e-12)
    # An ETF built by hand, not the solver's: accepted.
    assert _with_etf(path, tmp_path, _etf(0.4)) == []
    # One vector 0.05 rad off: unit rows, right shape, loss above the optimum.
    near = _etf(0.4)
    near[0] = [math.cos(0.45), math.sin(0.45)]
    reasons = _with_etf(path, tmp_path, near)
    assert any("does not meet the rule" in r for r in reasons), reasons


def _with_etf(path: str, tmp_path, X: np.ndarray) -> list[str]:
    copy = _copy(path, tmp_path, "UPDATE tightness SET features = ?",
                 (json.dumps(X.tolist()),))
    return [r for res in _verify(copy) for r in res.reasons]


def test_negatives_only_rows_are_rederived_with_their_own_loss(tmp_path):
    """The library call the sweep makes, for the negatives-only loss: the recomputed loss
    must be that loss (the SC loss of the same features is another number, and would not
    match the stored best_loss)."""
    spec = ProblemSpec((4, 4, 4), 0.5, loss="negatives-only", level="class")
    from scconvex.pipeline.solve import solve

    res = solve(spec)
    rep = tightness(spec, [2], restarts=1, relaxed=res)
    rows = [{**r.to_dict(), "restarts": 1, "seed": 0, "nc_level": "class",
             "features": r.features} for r in rep.rows]
    point = {"key": problem_key(spec.to_dict(), res.gap_tol, res.excess_tol),
             "family": "counts", "R": 1.0}
    path = str(tmp_path / "neg.sqlite")
    with Atlas(path, create=True) as atlas:
        atlas.add([make_record(res.to_dict(), point, rows)])
        (result,) = verify_atlas(atlas)
    assert result.ok and len(result.rederived) == 1, result.reasons
    # The features stored are the ETF: check against a hand-built one, loss by hand.
    X = np.array(json.loads(atlas_rows(path)[0]["features"]))
    G = X @ X.T
    assert np.allclose(G[~np.eye(3, dtype=bool)], -0.5, atol=1e-6)
    by_hand = sum(4 * math.log(8 * math.exp((-0.5 - 1) / 0.5)) for _ in range(3))
    assert rows[0]["best_loss"] == pytest.approx(by_hand, rel=1e-9)


def atlas_rows(path: str) -> list[dict]:
    with Atlas(path) as atlas:
        return atlas.tightness_rows()


def test_features_above_the_cap_are_not_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(atlas_module, "FEATURES_MAX", 20)  # 4 x 3 fits, 18 x 3 does not
    path = str(tmp_path / "cap.sqlite")
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points({**STEP, "dims": "3", "nc_level": "sample", "restarts": 1}),
                  atlas, workers=0)
        (row,) = atlas.tightness_rows()
        (result,) = verify_atlas(atlas)
    assert row["tight"] == 1 and row["features"] is None
    assert "18 x 3 features exceed the cap of 20 numbers" in row["features_note"]
    assert result.ok and not result.rederived
    assert len(result.not_rederivable) == 1 and "cap" in result.not_rederivable[0]


def test_old_format_atlas_opens_and_verifies(atlas_file, tmp_path, capsys):
    from scconvex.cli import main

    old = _copy(atlas_file, tmp_path, name="old")
    conn = sqlite3.connect(old)
    with conn:
        conn.execute("ALTER TABLE tightness DROP COLUMN features")
        conn.execute("ALTER TABLE tightness DROP COLUMN features_note")
        conn.execute("UPDATE meta SET value = '1' WHERE name = 'schema'")
    conn.close()
    results = _verify(old)
    assert len(results) == 1 and results[0].ok, results[0].reasons
    assert not results[0].rederived
    assert len(results[0].not_rederivable) == 2
    assert all("not re-derivable" in n for n in results[0].not_rederivable)
    for command in (["atlas", "list", old], ["atlas", "export", old],
                    ["atlas", "show", old, ""]):
        assert main(command) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["atlas", "verify", old]) == 0
    assert "0 re-derived from their features, 2 not re-derivable" in capsys.readouterr().out
    # A d = 3 claim edited to fail the consistency rule is still rejected without features.
    bad = _copy(old, tmp_path, "UPDATE tightness SET tight = 1 WHERE d = 2")
    assert any("d=2" in r for res in _verify(bad) for r in res.reasons)
    # The first write adds the columns; the new row is re-derivable, the old ones are not.
    with Atlas(old, create=True) as atlas:
        run_sweep(build_points({**STEP, "dims": "4", "restarts": 1}), atlas, workers=0)
        schema = atlas.conn.execute("SELECT value FROM meta WHERE name = 'schema'")
        assert schema.fetchone()[0] == str(ATLAS_SCHEMA)
        (result,) = verify_atlas(atlas)
    assert result.ok, result.reasons
    assert len(result.rederived) == 1 and "d=4" in result.rederived[0]
    assert len(result.not_rederivable) == 2
