"""``scconvex verify`` and the tightness tolerances through the real command (issue 8)."""

import json
import subprocess
import sys

import numpy as np


def run(*args):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=300)


def test_verify_rejects_small_tau_perturbation_and_uncertified(tmp_path):
    cert = tmp_path / "a.json"
    assert run("solve", "--counts", "9,3,4,5", "--tau", "0.05", "--level", "class",
               "--certificate", str(cert)).returncode == 0
    proc = run("verify", str(cert))
    assert proc.returncode == 0 and "relative to the excess loss" in proc.stdout
    data = json.loads(cert.read_text())
    M = np.array(data["class_gram"])
    data["class_gram"] = (0.98 * M + 0.02 * np.eye(4)).tolist()
    cert.write_text(json.dumps(data))
    proc = run("verify", str(cert))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    # An uncertified answer (a starved solve: excess gap about 40) written as a file.
    from scconvex import ProblemSpec, solve

    res = solve(ProblemSpec((10, 10, 1, 1, 1), 0.01), solver="native",
                options={"max_iter": 1})
    assert res.status == "uncertified"
    unc = tmp_path / "u.json"
    unc.write_text(json.dumps(res.to_dict()))
    proc = run("verify", str(unc), "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert not report["ok"] and report["excess_gap"] > 1 and report["excess_tol"] == 1e-3


def test_verify_tolerance_flags(tmp_path):
    cert = tmp_path / "c.json"
    assert run("solve", "--counts", "5,4,3", "--tau", "0.5", "--certificate",
               str(cert)).returncode == 0
    assert run("verify", str(cert), "--tol", "1e-6", "--excess-tol", "1e-3").returncode == 0
    proc = run("verify", str(cert), "--excess-tol", "1e-30")
    assert proc.returncode == 1 and "relative to the excess loss" in proc.stderr
    for bad in ("0", "x"):
        proc = run("verify", str(cert), "--excess-tol", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_tightness_excess_rule_and_flags():
    args = ("tightness", "--counts", "20,20,2,2", "--tau", "0.02", "--dims", "2",
            "--restarts", "3", "--json")
    row = json.loads(run(*args).stdout)["rows"][0]
    assert row["tight"] is False and row["excess_gap"] > 1
    proc = run(*args, "--excess-rtol", "1e12")
    assert json.loads(proc.stdout)["rows"][0]["tight"] is True
    proc = run(*args, "--rtol", "-1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
