"""``scconvex compare`` and ``plot --kind trajectory``, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scconvex.losses.sc import sc_loss


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scconvex", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], [12, 12, 3])
    means = rng.standard_normal((3, 5))
    (tmp_path / "ck").mkdir()
    for step, noise in ((1, 2.0), (2, 0.5), (10, 0.05)):  # natural order: 1, 2, 10
        H = means[y] + noise * rng.standard_normal((len(y), 5))
        np.save(tmp_path / "ck" / f"epoch_{step}.npy", H.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "y.txt").write_text("".join(f"{['cat', 'dog', 'emu'][c]}\n" for c in y))
    (tmp_path / "names.txt").write_text("cat\ndog\nemu\n")
    return tmp_path


def test_json_report_and_certificate(run_dir):
    proc = run("compare", "--features", "ck/epoch_10.npy", "--labels", "y.npy",
               "--class-names", "names.txt", "--tau", "0.1", "--json",
               "--certificate", "c.json", cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    H = np.load(run_dir / "ck" / "epoch_10.npy").astype(float)
    y = np.load(run_dir / "y.npy")
    assert abs(data["loss"] - sc_loss(H, y, 0.1)) <= data["loss_error"]
    assert data["class_names"] == ["cat", "dog", "emu"] and data["counts"] == [12, 12, 3]
    assert len(data["pairs"]) == 3 and data["pairs"][0]["i"] == "cat"
    cert = json.loads((run_dir / "c.json").read_text())
    assert cert["sample_lower_bound"] == pytest.approx(data["lower_bound"])
    assert run("verify", "c.json", cwd=run_dir).returncode == 0


def test_text_labels_and_npz(run_dir):
    H = np.load(run_dir / "ck" / "epoch_10.npy")
    np.savez(run_dir / "f.npz", features=H, labels=np.load(run_dir / "y.npy"),
             class_names=np.array(["cat", "dog", "emu"]))
    a = run("compare", "--features", "f.npz", "--tau", "0.1", cwd=run_dir)
    b = run("compare", "--features", "ck/epoch_10.npy", "--labels", "y.txt", "--tau", "0.1",
            cwd=run_dir)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    for proc in (a, b):
        assert "cosines between class means, trained:" in proc.stdout
        assert "cat" in proc.stdout and "gap" in proc.stdout


def test_checkpoints_folder_is_a_trajectory_and_plots(run_dir):
    proc = run("compare", "--features", "ck", "--labels", "y.npy", "--tau", "0.1",
               "--out", "traj.json", cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split()[0] for line in proc.stdout.splitlines()[2:] if "epoch" in line]
    assert lines == ["epoch_1.npy", "epoch_2.npy", "epoch_10.npy"]
    data = json.loads((run_dir / "traj.json").read_text())
    assert [r["step"] for r in data["rows"]] == [1, 2, 10]
    assert data["rows"][-1]["nc1_trace_ratio"] < data["rows"][0]["nc1_trace_ratio"]
    pytest.importorskip("matplotlib")
    proc = run("plot", "traj.json", "--kind", "trajectory", "--out", "t.png", cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "t.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("make, args, message", [
    (lambda d: np.save(d / "short.npy", np.arange(5)), ["--labels", "short.npy"],
     "27 feature rows but 5 labels"),
    (lambda d: np.save(d / "one.npy", np.repeat([0, 1, 2], [13, 13, 1])),
     ["--labels", "one.npy"], "has one sample"),
    (lambda d: (d / "bad.txt").write_text("cat\ncow\n" * 13 + "cat\n"),
     ["--labels", "bad.txt", "--class-names", "names.txt"], "unknown class 'cow'"),
])
def test_bad_input_exits_2_with_one_line(run_dir, make, args, message):
    make(run_dir)
    proc = run("compare", "--features", "ck/epoch_1.npy", "--tau", "0.1", *args, cwd=run_dir)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("features, message", [
    (np.full((27, 3), np.nan), "NaN"),
    (np.ones((27, 1)), "d = 1"),
])
def test_bad_features_exit_2(run_dir, features, message):
    np.save(run_dir / "bad.npy", features)
    proc = run("compare", "--features", "bad.npy", "--labels", "y.npy", "--tau", "0.1",
               cwd=run_dir)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
