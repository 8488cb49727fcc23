"""The command line, run through the real command."""

import json
import subprocess
import sys

import pytest


def run(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def test_solve_json_done_criterion():
    proc = run("solve", "--counts", "5,5,5", "--tau", "0.5", "--json", check_rc=0)
    d = json.loads(proc.stdout)
    assert d["loss"] == pytest.approx(22.554061550788, rel=1e-8)
    M = d["class_gram"]
    assert all(abs(M[i][j] + 0.5) < 1e-6 for i in range(3) for j in range(3) if i != j)
    assert d["status"] == "optimal" and d["rel_gap"] >= 0


def test_solve_table_and_certificate_round_trip(tmp_path):
    cert = tmp_path / "c.json"
    proc = run("solve", "--step", "4,0.5,5,2", "--tau", "0.5", "--certificate", str(cert),
               check_rc=0)
    assert "loss" in proc.stdout and "cosines" in proc.stdout
    run("verify", str(cert), "--tol", "1e-6", check_rc=0)
    data = json.loads(cert.read_text())
    data["class_gram"][0][1] = data["class_gram"][1][0] = data["class_gram"][0][1] + 1e-3
    cert.write_text(json.dumps(data))
    proc = run("verify", str(cert), "--tol", "1e-6", check_rc=1)
    assert "tampered" in proc.stderr


@pytest.mark.parametrize("args", [
    ["--counts", "5,0", "--tau", "1"],
    ["--counts", "5", "--tau", "1"],
    ["--counts", "5,5", "--tau", "0"],
    ["--counts", "5,5", "--tau", "-2"],
    ["--counts", "5,x", "--tau", "1"],
    ["--counts", "5,5", "--tau", "nan"],
    ["--counts", "5,5", "--tau", "abc"],
    ["--counts", "5,5", "--tau", "1", "--colour", "red"],
    ["--counts", "5,5"],
    ["--step", "10,0.5,10", "--tau", "1"],
])
def test_bad_input_exits_2_with_one_line(args):
    proc = run("solve", *args, check_rc=2)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_step_million_scale_certified_and_verified(tmp_path):
    cert = tmp_path / "c.json"
    proc = run("solve", "--step", "1000,0.5,100,10", "--tau", "0.1", "--json",
               "--certificate", str(cert), check_rc=0)
    d = json.loads(proc.stdout)
    assert d["n"] == 505_000 and d["level"] == "group"
    assert d["sample_rel_gap"] <= 1e-8 and d["rel_gap"] <= 1e-8
    run("verify", str(cert), check_rc=0)
    data = json.loads(cert.read_text())
    data["groups"]["gram"][0][0] += 1e-6
    cert.write_text(json.dumps(data))
    proc = run("verify", str(cert), check_rc=1)
    assert "verification failed" in proc.stderr


def test_tightness_done_criterion():
    proc = run("tightness", "--counts", "20,20,2,2", "--tau", "0.1", "--dims", "2,3,4,5",
               "--restarts", "10", "--json", check_rc=0)
    d = json.loads(proc.stdout)
    rows = {r["d"]: r for r in d["rows"]}
    assert rows[2]["tight"] is False
    for dim in (3, 4, 5):
        assert rows[dim]["tight"] is True and rows[dim]["reached"] == rows[dim]["restarts"]
