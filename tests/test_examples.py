"""Every script in examples/ runs, from a clean folder, and says what it should."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)


def test_every_example_is_tested():
    tested = {"dataset_geometry.py", "minority_collapse.py", "tightness_low_dim.py",
              "verify_certificate.py", "sweep_cluster.py", "compare_network.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_dataset_geometry_from_a_labels_file(tmp_path):
    # Three classes with string names; 'b' has one sample, so it has no anchor term.
    (tmp_path / "labels.txt").write_text("a\n" * 6 + "b\n" + "c\n" * 3)
    proc = run(tmp_path, "dataset_geometry.py", "labels.txt", "--tau", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "3 classes, 10 samples, tau = 0.5" in proc.stdout
    assert "status optimal" in proc.stdout


def test_dataset_geometry_demo_and_npy(tmp_path):
    import numpy as np

    np.save(tmp_path / "y.npy", np.array([0] * 5 + [1] * 5 + [2] * 5))
    proc = run(tmp_path, "dataset_geometry.py", "y.npy", "--tau", "0.5")
    assert proc.returncode == 0, proc.stderr
    # Balanced: the simplex ETF, every cosine between different classes -1/2.
    table = [line.split() for line in proc.stdout.splitlines() if line[:1] in "012"]
    cosines = [float(x) for i, row in enumerate(table) for j, x in enumerate(row[1:4]) if i != j]
    assert len(table) == 3 and cosines == [-0.5] * 6
    demo = run(tmp_path, "dataset_geometry.py")
    assert demo.returncode == 0, demo.stderr
    assert "using a demo file with 79 labels" in demo.stdout


def test_minority_collapse_grows_with_the_ratio(tmp_path):
    proc = run(tmp_path, "minority_collapse.py")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    minority = [float(row[2]) for row in rows]
    assert len(rows) == 11 and all(row[-1] == "optimal" for row in rows)
    assert abs(minority[0] + 1 / 9) < 1e-4  # R = 1: balanced, the ETF
    assert all(b > a for a, b in zip(minority[:-1], minority[1:], strict=True))


def test_minority_collapse_plot(tmp_path):
    pytest.importorskip("matplotlib")
    proc = run(tmp_path, "minority_collapse.py", "--plot", "c.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_tightness_low_dim(tmp_path):
    proc = run(tmp_path, "tightness_low_dim.py")
    assert proc.returncode == 0, proc.stderr
    assert "rank 3" in proc.stdout
    assert "smallest tight dimension found: 3" in proc.stdout


def test_verify_certificate_accepts_and_rejects(tmp_path):
    proc = run(tmp_path, "verify_certificate.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cifar10_lt.json: verified" in proc.stdout
    assert "forged.json: REJECTED" in proc.stdout


def test_verify_certificate_of_a_file(tmp_path):
    solved = subprocess.run([sys.executable, "-m", "scconvex", "solve", "--counts", "5,4,3",
                             "--tau", "0.5", "--certificate", str(tmp_path / "c.json")],
                            cwd=ROOT, capture_output=True, text=True)
    assert solved.returncode == 0, solved.stderr
    proc = run(tmp_path, "verify_certificate.py", "c.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "c.json: verified" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask.distributed is not installed")
def test_sweep_cluster_in_process(tmp_path):
    proc = run(tmp_path, "sweep_cluster.py", "--out", "grid.csv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "21 solves, 21 certified" in proc.stdout
    lines = (tmp_path / "grid.csv").read_text().splitlines()
    assert len(lines) == 22 and lines[0].startswith("tau,R,status")


def test_compare_network_reduced_run(tmp_path):
    # The docs page's example in reduced form (R = 20, 300 steps, a narrow MLP). Training
    # outcomes vary with the machine's rounding, so only what must hold is asserted: the
    # certified lower bound is below every loss the network reaches, the collapsed
    # features are feasible (their loss is above the bound too), training lowered the loss
    # and the gap and tightened the classes, and the majority classes end up spread wider
    # than the simplex ETF allows, as the certified optimum says they should.
    pytest.importorskip("sklearn")
    import json

    proc = run(tmp_path, "compare_network.py", "--quick", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["R"], r["mode"]) for r in rows] == [(20, "full batch"),
                                                    (20, "batches of 128")]
    for r in rows:
        assert r["n"] == 5 * 160 + 5 * 8
        assert r["gap"] >= -r["loss_error"] and r["gap_first"] > 0
        assert r["geometry_gap"] >= -1e-6
        assert r["geometry_gap"] + r["within_gap"] == pytest.approx(r["gap"])
        assert r["loss"] < r["loss_first"] and r["gap"] < r["gap_first"]
        assert r["nc1_trace_ratio"] < r["nc1_first"]
        assert r["maj_maj_optimum"] < -1 / 9
    full = rows[0]
    assert full["gap_resolved"] and full["maj_maj"] < -1 / 9
