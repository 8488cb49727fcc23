"""Attacks on ``atlas verify``: rows edited in the database the way a forger would.

The certificate column alone is re-verified from scratch; every other column must be tied
to it. Before these checks the columns that describe the problem (tau, counts, k, n, loss,
relaxation, levels, tolerances, solver, rank, the excess columns and the grid coordinates)
and the whole tightness table could be edited freely and ``atlas verify`` still passed.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import honest_claims, swept_atlas

from scconvex.certificates.measures import step_minority
from scconvex.certificates.verify import verify_data
from scconvex.studies.atlas import SOLVE_COLUMNS, Atlas, make_record, problem_key, verify_atlas
from scconvex.studies.sweep import build_points, run_sweep


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    return swept_atlas(tmp_path_factory.mktemp("atlas"), step_k=4, rho=0.5, n_min=3, R="2",
                       tau="0.1", dims="2,3", restarts=2)


def _rejected(path: str, tmp_path, sql: str, params=()) -> list[str]:
    copy = str(tmp_path / "copy.sqlite")
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as conn:
        conn.execute(sql, params)
    conn.close()
    with Atlas(copy) as atlas:
        results = verify_atlas(atlas)
    return [r for res in results if not res.ok for r in res.reasons]


def test_untouched_atlas_verifies(atlas_file):
    with Atlas(atlas_file) as atlas:
        results = verify_atlas(atlas)
        assert len(atlas.tightness_rows()) == 2
    assert results and all(r.ok for r in results), [r.reasons for r in results]


@pytest.mark.parametrize("column, value", [
    ("tau", 0.5), ("counts", "9x4"), ("k", 7), ("n", 99), ("loss_name", "negatives-only"),
    ("relaxation", "dnn"), ("level", "sample"), ("level_requested", "class"),
    ("gap_tol", 1.0), ("excess_tol", 1.0), ("solver", "clarabel"), ("rank", 1),
    ("excess_loss", 1.0), ("excess_gap", 0.0), ("sample_excess_gap", 0.0),
    ("R", 4.0), ("rho", 0.25), ("n_min", 2), ("family", "long_tail"),
])
def test_edited_column_is_rejected(atlas_file, tmp_path, column, value):
    reasons = _rejected(atlas_file, tmp_path, f"UPDATE solves SET {column} = ?", (value,))
    assert reasons, column


@pytest.mark.parametrize("change", [
    "tight = 1",  # d = 2 is not tight: its gaps say so
    "reached = 5",  # more restarts than were run
    "best_loss = best_loss - 1",  # below the certified lower bound
    "rel_gap = 0.0, excess_gap = 0.0",  # gaps that do not follow from best_loss
    "tight = 1, reached = 1, rel_gap = 0.0",
])
def test_edited_tightness_row_is_rejected(atlas_file, tmp_path, change):
    reasons = _rejected(atlas_file, tmp_path, f"UPDATE tightness SET {change} WHERE d = 2")
    assert any("tightness row d=2" in r for r in reasons), reasons


@pytest.mark.parametrize("change", [
    "measures = 'not json'", "class_gram = '[[1'", "class_gram = '\"s\"'", "measures = '[1]'",
    "rho = 'abc'", "gap_tol = NULL", "key = NULL", "family = NULL", "tau = 'x'",
])
def test_damaged_row_is_rejected_not_a_crash(atlas_file, tmp_path, capsys, change):
    from scconvex.cli import main

    reasons = _rejected(atlas_file, tmp_path, f"UPDATE solves SET {change}")
    assert reasons
    copy = str(tmp_path / "copy.sqlite")
    for command in (["atlas", "verify", copy], ["atlas", "list", copy],
                    ["atlas", "export", copy], ["atlas", "show", copy, ""]):
        code = main(command)
        err = capsys.readouterr().err
        assert "internal error" not in err, (command, err)
        assert code in (0, 1, 2) and len(err.strip().splitlines()) <= 1, (command, err)


def test_damaged_database_files_are_bad_input(atlas_file, tmp_path, capsys):
    from scconvex.cli import main

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(Path(atlas_file).read_bytes())
    with open(corrupt, "r+b") as fh:  # overwrite pages past the header
        fh.seek(4096)
        fh.write(b"\xff" * 8192)
    other = str(tmp_path / "other.sqlite")
    with sqlite3.connect(other) as conn:  # the three tables, not the atlas columns
        conn.executescript("CREATE TABLE solves (key TEXT); CREATE TABLE tightness (key TEXT);"
                           "CREATE TABLE meta (name TEXT); INSERT INTO solves VALUES ('a');")
    conn.close()
    for path in (str(corrupt), other):
        for command in (["atlas", "verify", path], ["atlas", "list", path],
                        ["atlas", "export", path],
                        ["plot", path, "--kind", "gap", "--out", str(tmp_path / "f.png")]):
            code = main(command)
            err = capsys.readouterr().err
            assert code == 2 and "internal error" not in err, (command, err)
            assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- issue 20, item 1
@pytest.fixture(scope="module")
def small_tau_atlas(tmp_path_factory):
    """STEP k = 4, R = 10, tau = 0.02, solved and stored by a sweep."""
    return swept_atlas(tmp_path_factory.mktemp("small_tau"), step_k=4, rho=0.5, n_min=3,
                       R="10", tau="0.02")


def _replace_row(path: str, tmp_path, record: dict) -> str:
    """A copy of the atlas whose only solve row is ``record`` (a forger's full rewrite)."""
    copy = str(tmp_path / "forged.sqlite")
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    names = [n for n, _ in SOLVE_COLUMNS]
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM solves")
        conn.execute(f"INSERT INTO solves ({', '.join(names)}) VALUES "
                     f"({', '.join('?' * len(names))})", [record["solve"][n] for n in names])
    conn.close()
    return copy


def _orthogonal_forgery(row: dict, excess_tol: float) -> dict:
    """The row's certificate with orthogonal class means, every claim recomputed honestly,
    the stated ``excess_tol`` loosened and the key and every column rebuilt to match."""
    cert = json.loads(row["certificate"])
    k = cert["k"]
    cert["level"] = "class"
    cert.pop("groups", None)
    cert["class_gram"] = np.eye(k).tolist()
    honest_claims(cert)
    cert["excess_tol"] = excess_tol
    key = problem_key(cert["spec"], cert["gap_tol"], excess_tol)
    point = {"key": key, "family": "step", "R": row["R"], "rho": row["rho"],
             "n_min": row["n_min"], "minority": step_minority(k, row["rho"]).tolist()}
    return make_record(cert, point)


def test_row_tolerances_do_not_judge_the_row(small_tau_atlas, tmp_path, capsys):
    """Issue 20: a row whose own excess_tol is 1e9 passed ``atlas verify --tol 1e-6``
    although its excess is 2e7 times the optimum's; plain verify rejects it."""
    from scconvex.cli import main

    with Atlas(small_tau_atlas) as atlas:
        (row,) = atlas.rows()
    forged = _orthogonal_forgery(row, 1e9)
    cert = json.loads(forged["solve"]["certificate"])
    assert not verify_data(cert).ok  # plain verify: gap relative to the excess ~2e7
    assert verify_data(cert, excess_tol=1e9).ok  # ... but fine under the row's own
    copy = _replace_row(small_tau_atlas, tmp_path, forged)
    with Atlas(copy) as atlas:
        (result,) = verify_atlas(atlas)
    assert not result.ok and result.excess_tol == 1e9
    assert any("looser" in r and "--excess-tol 1e+09" in r for r in result.reasons)
    for extra in ([], ["--tol", "1e-6"]):
        assert main(["atlas", "verify", copy, *extra]) == 1
        out, err = capsys.readouterr()
        assert "1 rejected" in out and "excess_tol 1e+09" in out, out
    assert main(["atlas", "verify", copy, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["excess_tol"] == 1e-3 and report["tol"] == 1e-6
    assert report["rejected"][0]["excess_tol"] == 1e9
    assert report["row_tolerances"] == [{"gap_tol": 1e-6, "excess_tol": 1e9, "rows": 1}]
    # The verifier may choose to judge at the row's own tolerance, and then says so.
    assert main(["atlas", "verify", copy, "--excess-tol", "1e9"]) == 0
    assert "--excess-tol 1e+09" in capsys.readouterr().out


def test_loose_sweep_row_is_judged_by_the_verifier(tmp_path):
    """A ``sweep --excess-tol 1e9`` row verifies only if it meets the verifier's own
    tolerances, whatever the solver returned."""
    path = str(tmp_path / "loose.sqlite")
    settings = {"step_k": 4, "rho": 0.5, "n_min": 3, "R": "10", "tau": "0.02",
                "excess_tol": "1e9", "gap_tol": "1e-3"}
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points(settings), atlas, workers=0)
        (row,) = atlas.rows()
        (result,) = verify_atlas(atlas)
    assert (result.gap_tol, result.excess_tol) == (1e-3, 1e9)
    if row["status"] == "optimal":
        assert result.ok == verify_data(json.loads(row["certificate"])).ok


_COPY_TIGHT_ROW = ("INSERT INTO tightness SELECT key, 1, restarts, seed, nc_level, tight, "
                   "reached, best_loss, rel_gap, excess_gap, gram_distance, seconds, NULL, ? "
                   "FROM tightness WHERE d = 3")
"""The honest tight d = 3 row copied to d = 1, its features dropped and a note added."""


@pytest.mark.parametrize("note", ["not re-derivable: the features exceed the cap", None,
                                  "not re-derivable: written before features were stored"])
def test_tight_claim_without_features_is_rejected(atlas_file, tmp_path, capsys, note):
    """Issue 20: a d = 1 tight row with no features and a false reason (4 numbers, far
    under the cap) passed, and the export said min_tight_dim = 1 for an optimum of rank 3."""
    from scconvex.cli import main

    reasons = _rejected(atlas_file, tmp_path, _COPY_TIGHT_ROW, (note,))
    assert any("tightness row d=1: tight claim rejected" in r for r in reasons), reasons
    copy = str(tmp_path / "copy.sqlite")
    assert main(["atlas", "export", copy]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0].split(",")
    assert out[1].split(",")[header.index("min_tight_dim")] == "3"


def test_legacy_tight_claim_below_the_rank_of_a_unique_optimum(atlas_file, tmp_path):
    """An atlas written before features existed may hold tight rows without them; even
    there a d below the rank of a unique optimum is rejected (no such point attains it)."""
    copy = str(tmp_path / "old.sqlite")
    with sqlite3.connect(atlas_file) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE tightness SET features = NULL, features_note = NULL")
        conn.execute("INSERT INTO meta VALUES ('legacy_tight', '1')")
    conn.close()
    with Atlas(copy) as atlas:
        (result,) = verify_atlas(atlas)
    assert result.ok and len(result.not_rederivable) == 1, result.reasons  # d = 3, rank 3
    reasons = _rejected(copy, tmp_path, _COPY_TIGHT_ROW, (None,))
    assert any("d=1 is below the rank 3" in r for r in reasons), reasons
