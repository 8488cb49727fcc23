"""Sweeps and the atlas: dask runs equal direct solves, resumes, kills, verification."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from scconvex import ProblemSpec, solve
from scconvex.errors import InvalidInputError
from scconvex.studies.atlas import Atlas, problem_key, table, verify_atlas
from scconvex.studies.sweep import build_points, load_spec_file, run_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"step_k": 6, "rho": 0.5, "n_min": 2, "R": "1,3,10", "tau": "0.2,1"}


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def assert_rows_equal_direct_solves(path, expected):
    with Atlas(path) as atlas:
        rows = atlas.rows()
    assert len(rows) == expected
    for row in rows:
        cert = json.loads(row["certificate"])
        spec = ProblemSpec.from_dict(cert["spec"])
        direct = solve(spec)
        assert row["status"] == direct.status == "optimal"
        assert row["loss"] == pytest.approx(direct.loss, rel=1e-12)
        assert row["lower_bound"] <= direct.loss * (1 + 1e-12)
        M = np.array(json.loads(row["class_gram"]))
        np.testing.assert_allclose(M, direct.class_gram, atol=1e-9)
        assert row["key"] == problem_key(spec.to_dict(), direct.gap_tol, direct.excess_tol)
        if row["family"] == "step":
            assert spec == ProblemSpec.step(6, 0.5, row["R"], 2, row["tau"])


def test_build_points_grid_and_rounding():
    points = build_points({**SMALL, "R": "logspace:1:100:5"})
    assert len(points) == 10
    for p in points:  # R is rounded so that R * n_min is an integer
        assert p["R"] * 2 == round(p["R"] * 2)
    assert len({p["key"] for p in points}) == len(points)
    mixed = build_points({"counts": ["5x3", "9,4,4"], "tau": "0.5", "dims": "2,3",
                          "restarts": "3"})
    assert [p["spec"]["counts"] for p in mixed] == [[5, 5, 5], [9, 4, 4]]
    assert mixed[0]["dims"] == [2, 3] and mixed[0]["restarts"] == 3
    with pytest.raises(InvalidInputError, match="STEP grid needs"):
        build_points({"step_k": 6, "tau": "1"})
    with pytest.raises(InvalidInputError, match="no problems"):
        build_points({"tau": "1"})


def test_toml_spec(tmp_path):
    (tmp_path / "c.txt").write_text("10\n10\n3\n")
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nstep-k = 4\nrho = 0.5\nn_min = 2\nR = "logspace:1:1e2:3"\n'
                    'tau = [0.5, 1]\ncounts_files = ["c.txt"]\nworkers = 0\n')
    settings = load_spec_file(path)
    assert settings["workers"] == 0
    settings.pop("workers")
    points = build_points(settings)
    assert len(points) == 3 * 2 + 2
    assert points[-1]["spec"]["counts"] == [10, 10, 3]
    path.write_text(path.read_text() + f'atlas = "{tmp_path / "t.sqlite"}"\n')
    proc = run_cli("sweep", "--spec", str(path), "--tau", "2", "--json")  # CLI overrides
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["solved"] == 4
    with Atlas(tmp_path / "t.sqlite") as atlas:
        assert {r["tau"] for r in atlas.rows()} == {2.0}
    path.write_text("steps = 3\n")
    with pytest.raises(InvalidInputError, match="unknown settings"):
        load_spec_file(path)
    path.write_text("tau = [\n")
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        load_spec_file(path)


@pytest.mark.parametrize("workers", [
    pytest.param("2", marks=pytest.mark.slow, id="local-cluster"), pytest.param("0", id="serial")])
def test_sweep_equals_direct_solves(tmp_path, workers):
    """Two local dask workers (or in process); a rerun solves nothing and says so."""
    if workers != "0":
        pytest.importorskip("distributed")
    db = str(tmp_path / "runs.sqlite")
    args = ["sweep", "--step-k", "6", "--rho", "0.5", "--n-min", "2", "--R", "1,3,10",
            "--tau", "0.2,1", "--atlas", db, "--workers", workers]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "6 solved, 0 from the atlas" in proc.stdout
    assert ("2 workers" if workers == "2" else "in process") in proc.stdout
    assert_rows_equal_direct_solves(db, 6)
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["solved"] == 0 and summary["from_atlas"] == 6
    assert summary["message"] == "0 solved, 6 from the atlas"
    proc = run_cli("atlas", "export", db, "--csv")
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 7 and lines[0].startswith("key,")
    assert sum(",optimal," in line for line in lines) == 6


@pytest.mark.slow
def test_external_scheduler_and_worker(tmp_path):
    """A scheduler and a worker started as separate processes, as a user would."""
    pytest.importorskip("distributed")
    env = {**os.environ, "PYTHONPATH": ROOT}
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    sched_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while not (sched_file.exists() and sched_file.stat().st_size):
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard"], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        db = str(tmp_path / "runs.sqlite")
        proc = run_cli("sweep", "--step-k", "6", "--rho", "0.5", "--n-min", "2", "--R",
                       "1,3,10", "--tau", "0.2,1", "--atlas", db, "--scheduler", address,
                       timeout=180)
        assert proc.returncode == 0, proc.stderr
        assert "6 solved, 0 from the atlas" in proc.stdout
        assert_rows_equal_direct_solves(db, 6)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    import scconvex.studies.sweep as sweep_module

    points = build_points(SMALL)
    calls = []
    real = sweep_module.run_point

    def counting(point):
        calls.append(point["key"])
        return real(point)

    monkeypatch.setattr(sweep_module, "run_point", counting)
    done = []

    def interrupt_after_two(n):
        done.append(n)
        if len(done) == 2:
            raise KeyboardInterrupt

    with Atlas(tmp_path / "a.sqlite", create=True) as atlas:
        first = run_sweep(points, atlas, workers=0, progress=interrupt_after_two)
        assert first.interrupted and first.solved == 2 and len(atlas) == 2
        kept = {r["key"]: (r["created"], r["certificate"]) for r in atlas.rows()}
    assert "interrupted" in first.message
    calls.clear()
    with Atlas(tmp_path / "a.sqlite") as atlas:
        second = run_sweep(points, atlas, workers=0)
        assert (second.solved, second.from_atlas) == (4, 2) and not second.interrupted
        assert set(calls).isdisjoint(kept) and len(calls) == 4
        rows = {r["key"]: (r["created"], r["certificate"]) for r in atlas.rows()}
    assert all(rows[k] == v for k, v in kept.items())


def _wait_rows(db, at_least, proc, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be stopped"
        try:
            conn = sqlite3.connect(db, timeout=5)
            n = conn.execute("SELECT COUNT(*) FROM solves").fetchone()[0]
            conn.close()
            if n >= at_least:
                return
        except sqlite3.OperationalError:
            pass  # tables not created yet
        time.sleep(0.1)
    raise AssertionError("no rows appeared")


BIG = ["--step-k", "10", "--rho", "0.5", "--n-min", "5", "--R", "logspace:1:1e4:40",
       "--tau", "logspace:0.02:5:25", "--batch-size", "5"]


@pytest.mark.parametrize("sig, workers", [
    (signal.SIGKILL, "0"), (signal.SIGINT, "0"),
    pytest.param(signal.SIGINT, "2", marks=pytest.mark.slow, id="ctrl-c-local-cluster")])
def test_stopped_sweep_leaves_an_atlas_that_opens(tmp_path, sig, workers):
    """SIGKILL, or a Ctrl-C sent to the whole process group as a terminal does."""
    if workers != "0":
        pytest.importorskip("distributed")
    db = str(tmp_path / "runs.sqlite")
    proc = subprocess.Popen([sys.executable, "-m", "scconvex", "sweep", *BIG, "--atlas", db,
                             "--workers", workers], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_rows(db, 5, proc)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with Atlas(db) as atlas:
        n = len(atlas)
        assert 5 <= n < 1000
        results = verify_atlas(atlas)
    assert len(results) == n and all(r.ok for r in results)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert err.strip() == "scconvex: interrupted; every finished solve is saved"
        assert out.startswith(f"{n} solved, 0 from the atlas; interrupted")


def test_atlas_verify_rejects_altered_rows(tmp_path):
    db = str(tmp_path / "a.sqlite")
    with Atlas(db, create=True) as atlas:
        run_sweep(build_points({**SMALL, "R": "3", "tau": "0.5"}), atlas, workers=0)
    proc = run_cli("atlas", "verify", db)
    assert proc.returncode == 0 and "1 certificates re-checked" in proc.stdout
    conn = sqlite3.connect(db)
    (key, block, cert) = conn.execute("SELECT key, block_gram, certificate FROM solves").fetchone()
    # 1. The geometry column alone is altered.
    geo = json.loads(block)
    geo["gram"][0][1] = geo["gram"][1][0] = geo["gram"][0][1] + 1e-4
    with conn:
        conn.execute("UPDATE solves SET block_gram = ?", (json.dumps(geo),))
    proc = run_cli("atlas", "verify", db)
    assert proc.returncode == 1 and "block_gram" in proc.stderr
    # 2. A measure altered in its column and in the measures JSON alike.
    with conn:
        conn.execute("UPDATE solves SET block_gram = ?", (block,))
        m = json.loads(conn.execute("SELECT measures FROM solves").fetchone()[0])
        m["cos_min_min"] += 1e-3
        conn.execute("UPDATE solves SET measures = ?, cos_min_min = ?",
                     (json.dumps(m), m["cos_min_min"]))
    proc = run_cli("atlas", "verify", db)
    assert proc.returncode == 1 and "measure cos_min_min" in proc.stderr
    # 3. Column and certificate altered alike: the recomputed loss exposes it.
    data = json.loads(cert)
    data["groups"]["gram"] = geo["gram"]
    with conn:
        conn.execute("UPDATE solves SET certificate = ?", (json.dumps(data),))
    proc = run_cli("atlas", "verify", db, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert not report["ok"] and report["rejected"][0]["key"] == key
    assert any("tampered" in r for r in report["rejected"][0]["reasons"])
    conn.close()


def test_export_names_cosines_and_atlas_errors(tmp_path):
    db = str(tmp_path / "a.sqlite")
    with Atlas(db, create=True) as atlas:
        run_sweep(build_points({**SMALL, "counts": ["9,5,3,2"]}), atlas, workers=0)
        rows = table(atlas)
        step = [r for r in rows if r["family"] == "step"]
        other = [r for r in rows if r["family"] == "counts"]
        assert len(step) == 6 and len(other) == 2
        for r in step:
            M = np.array(json.loads(atlas.rows([("key", r["key"])])[0]["class_gram"]))
            assert r["cos_maj_maj"] == pytest.approx(M[0, 1], abs=1e-12)
            assert r["cos_min_min"] == pytest.approx(M[4, 5], abs=1e-12)
            assert r["cos_maj_min"] == pytest.approx(M[0, 5], abs=1e-12)
        for r in other:
            assert r["cos_maj_maj"] is None and r["cos_min"] <= r["cos_mean"] <= r["cos_max"]
        # The tolerances each row was certified under are in the table, next to its gaps.
        for r in rows:
            cert = json.loads(atlas.rows([("key", r["key"])])[0]["certificate"])
            assert (r["gap_tol"], r["excess_tol"]) == (cert["gap_tol"], cert["excess_tol"])
    proc = run_cli("atlas", "list", db, "--where", "family=counts")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("2 rows")
    proc = run_cli("atlas", "show", db, other[0]["key"][:10])
    shown = json.loads(proc.stdout)
    assert shown["key"] == other[0]["key"] and shown["measures"]["cos_min"] == other[0]["cos_min"]
    proc = run_cli("atlas", "list", str(tmp_path / "missing.sqlite"))
    assert proc.returncode == 2 and "no atlas" in proc.stderr
    (tmp_path / "junk.sqlite").write_text("not a database")
    proc = run_cli("atlas", "list", str(tmp_path / "junk.sqlite"))
    assert proc.returncode == 2 and "not an atlas" in proc.stderr
    proc = run_cli("atlas", "export", db, "--parquet", str(tmp_path / "x.parquet"))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert proc.returncode == 2 and "pyarrow" in proc.stderr
    else:
        assert proc.returncode == 0


def test_missing_extras_are_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with Atlas(tmp_path / "a.sqlite", create=True) as atlas:
        with pytest.raises(InvalidInputError, match=r"\[sweep\]"):
            run_sweep(build_points({**SMALL, "R": "3", "tau": "1"}), atlas, workers=2)
        run_sweep(build_points({**SMALL, "R": "3", "tau": "1"}), atlas, workers=0)
        from scconvex.studies.plot import make_figure

        with pytest.raises(InvalidInputError, match=r"\[plot\]"):
            make_figure(atlas, "gram")
