"""The atlas keeps what it is given, and can be read where it cannot be written (issue 20).

Solves replaced by another solver keep their tightness rows consistent, uncertified rows
are retried, a name that stores nothing is refused, and a read-only atlas is readable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from scconvex.cli import main
from scconvex.studies.atlas import Atlas
from scconvex.studies.sweep import build_points, run_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = {"step_k": 4, "rho": 0.5, "n_min": 3, "R": "2", "tau": "0.1"}


@pytest.mark.parametrize("name", ["", ":memory:"])
def test_atlas_that_stores_nothing_is_refused(name, capsys):
    """Issue 20: ``sweep --atlas ""`` and ``--atlas :memory:`` printed "1 solved" and
    exited 0 while nothing was stored."""
    code = main(["sweep", "--step-k", "4", "--rho", "0.5", "--n-min", "3", "--R", "2",
                 "--tau", "0.1", "--workers", "0", "--atlas", name])
    err = capsys.readouterr().err
    assert code == 2 and "stores nothing" in err and len(err.strip().splitlines()) == 1


def _as_other_user() -> list[str] | None:
    """A command prefix that runs as an unprivileged user (root ignores file modes)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_atlas_is_readable(tmp_path):
    """Issue 20: in a read-only folder every reading command said "is not an atlas
    database" (opening the WAL database for writing failed)."""
    prefix = _as_other_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only")
    folder = tempfile.mkdtemp(prefix="scconvex-ro-")  # /tmp: reachable by another user
    out = tempfile.mkdtemp(prefix="scconvex-out-")
    try:
        os.chmod(out, 0o777)
        path = os.path.join(folder, "a.sqlite")
        with Atlas(path, create=True) as atlas:
            run_sweep(build_points(STEP), atlas, workers=0)
        os.chmod(path, 0o444)
        os.chmod(folder, 0o555)
        env = {**os.environ, "MPLCONFIGDIR": out, "HOME": out}
        for args in (["atlas", "list", path], ["atlas", "show", path, ""],
                     ["atlas", "export", path], ["atlas", "verify", path],
                     ["plot", path, "--kind", "gram", "--out", os.path.join(out, "g.png")]):
            proc = subprocess.run([*prefix, sys.executable, "-m", "scconvex", *args],
                                  capture_output=True, text=True, timeout=120, cwd=out,
                                  env=env)
            assert proc.returncode == 0, (args, proc.stderr)
        assert sorted(os.listdir(folder)) == ["a.sqlite"]  # nothing written beside it
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def test_switching_solvers_keeps_rows_consistent(tmp_path):
    """Issue 20: ``sweep --solver clarabel`` then the same grid with ``--solver native
    --dims 2`` stored tightness rows measured against the native solve next to the
    clarabel one, and ``atlas verify`` rejected every row."""
    from scconvex.studies.atlas import verify_atlas

    path = str(tmp_path / "a.sqlite")
    with Atlas(path, create=True) as atlas:
        first = run_sweep(build_points({**STEP, "solver": "clarabel"}), atlas, workers=0)
        second = run_sweep(build_points({**STEP, "solver": "native", "dims": "2,3",
                                         "restarts": 1}), atlas, workers=0)
        third = run_sweep(build_points({**STEP, "solver": "native", "dims": "2,3,4",
                                        "restarts": 1}), atlas, workers=0)
        (row,) = atlas.rows()
        tight = atlas.tightness_rows()
        results = verify_atlas(atlas)
    assert (first.solved, second.solved, third.solved) == (1, 1, 1)
    assert row["solver"] == "clarabel" and row["status"] == "optimal"
    assert sorted(t["d"] for t in tight) == [2, 3, 4]
    assert all(r.ok for r in results), [r.reasons for r in results]
    assert results[0].rederived  # the tight d = 3 row, against the clarabel solve


def test_uncertified_rows_are_retried(tmp_path, capsys):
    """Issue 20: a row stored as not certified was never solved again ("0 solved, 1 from
    the atlas"); now a rerun retries it, replaces it (with its tightness rows), says so,
    and ``--no-retry`` keeps it."""
    import json
    import sqlite3

    path = str(tmp_path / "a.sqlite")
    with Atlas(path, create=True) as atlas:
        run_sweep(build_points({**STEP, "dims": "2", "restarts": 1}), atlas, workers=0)
    conn = sqlite3.connect(path)
    (text,) = conn.execute("SELECT certificate FROM solves").fetchone()
    cert = {**json.loads(text), "status": "uncertified"}
    with conn:
        conn.execute("UPDATE solves SET status = 'uncertified', certificate = ?",
                     (json.dumps(cert),))
    conn.close()
    argv = ["sweep", "--step-k", "4", "--rho", "0.5", "--n-min", "3", "--R", "2", "--tau",
            "0.1", "--workers", "0", "--atlas", path, "--dims", "2", "--restarts", "1"]
    assert main([*argv, "--no-retry"]) == 0
    assert capsys.readouterr().out.startswith("0 solved, 1 from the atlas")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 solved, 0 from the atlas (1 retried"), out
    with Atlas(path) as atlas:
        (row,) = atlas.rows()
        assert row["status"] == "optimal" and len(atlas.tightness_rows()) == 1
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["solved"], summary["from_atlas"], summary["retried"]) == (0, 1, 0)
